"""`pulumi up`: read the stack config, validate the manifest, build the fleet, export."""

from program import main

main()
