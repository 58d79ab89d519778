"""The API's OpenAPI 3.1 document, the contract the schemathesis test and the API tests hold
the service to: its paths by route group, and the schemas of every body."""
