// Package pages renders the pages edgeblock serves itself: the block page
// and the error pages (unknown host, bad gateway, gateway timeout), each as
// HTML, RFC 9457 problem+json or plain text depending on the client's Accept
// header.
//
// Pages are prepared ahead: a Renderer turns a template into a Page once per
// distinct set of block attributes, splitting the output into static bytes
// and the few per-request values (host, request ID, time). Serving a Page
// then only copies bytes, which keeps the block page of a popular site cheap.
//
// The package imports nothing else of edgeblock.
package pages
