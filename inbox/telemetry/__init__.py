"""What the service tells its operator: Prometheus metrics (`metrics`, served by
`scrape`, summed over `inbox serve --workers` by `workers`), and log lines that carry
the request that caused them (`context`, `logs`)."""
