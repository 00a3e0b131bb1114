"""The Kubernetes runtime: child objects, observation and the API client."""
