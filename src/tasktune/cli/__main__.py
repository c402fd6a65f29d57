from tasktune.cli.launch import main

main()
