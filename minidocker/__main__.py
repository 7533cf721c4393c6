from minidocker.cli.main import main

main()
