"""One module per `mlfn` subcommand; each exposes `register(subparsers)` and keeps heavy imports inside its
handler so `mlfn --help` stays fast."""
