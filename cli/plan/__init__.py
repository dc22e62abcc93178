"""`mlfn plan`: measure a model on this machine under Lambda's CPU shares, then price every target."""
