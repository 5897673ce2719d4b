// Package certmgr obtains, stores and renews the edge's certificates with
// certmagic, for exactly the names the edge covers, and answers TLS
// handshakes with them.
//
// It knows nothing of routes, rules or requests: the edge tells it which
// names it covers through Edge, and which names to obtain ahead of their
// first handshake through Manager.ManageAhead. A name the edge does not
// cover gets no certificate and no ACME order; its handshake ends with the
// unrecognized_name alert.
//
// One concern per file: manager.go (the Manager and its certmagic
// configs), storage.go (where certificates live: a directory, or the
// fleet's Redis behind breaker.go's deadline, breaker and local copy),
// internalca.go (the internal CA of tls.mode internal), handshake.go (the
// listeners' TLS configs and the on-demand decision), ahead.go (names
// obtained ahead, wildcard certificates by DNS-01), expiry.go
// (certmagic's events, the expiry and issuance metrics).
package certmgr
