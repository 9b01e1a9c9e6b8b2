"""Serving the classifier over HTTP: TEI's API (app), token-budget batching (batcher), the Classifier as a replica
opens it (engine), Prometheus metrics, Ray Serve's deployment and entry point (ray_serve) and a bounded load (load)."""
