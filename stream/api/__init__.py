"""The HTTP API (``esn-pulse api``): routes, response models, bearer-token scopes, the access log
and the OpenAPI document generated from the models."""
