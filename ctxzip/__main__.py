from ctxzip.cli import main

main()
