// Package neostore is the vocabulary of the Neostore secret store: secrets,
// validity windows, tenants, principals and scopes, the error codes every layer
// speaks, and the interfaces that storage, sealing and authentication
// implement. It imports only the standard library; every adapter depends on it
// and it depends on none of them.
package neostore
