"""The embedded demo: emulator + receiver + shim + consumer on one machine, no cloud, no configuration."""
