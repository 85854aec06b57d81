from kdnas.cli.app import main

main()
