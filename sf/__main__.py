from sf.cli import main

main()
