"""The API's shapes: what requests may carry and what responses show."""
