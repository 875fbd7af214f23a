"""The `streamdrift` commands (run, demo, broker, backtest, check-config): argument parsing and
exit codes over the service, the backtest and the edges."""
