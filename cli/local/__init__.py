"""The local emulator: moto control plane with mlfn extensions, and a data plane that runs what is deployed."""
