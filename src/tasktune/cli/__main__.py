from tasktune.cli.app import main

main()
