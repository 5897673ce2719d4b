// Package pages renders the pages edgeblock serves itself: the block page
// and the error pages (bad request, unknown host, method not allowed, bad
// gateway, busy, gateway timeout, loop, starting), each as HTML, RFC 9457
// problem+json or plain text depending on the client's Accept header, and
// in the language its Accept-Language header prefers.
//
// Pages are prepared ahead: a Renderer turns a template into a Page once
// per distinct set of block attributes and language, splitting the output
// into static bytes and the few per-request values (host, request ID,
// time). Serving a Page then only negotiates and copies bytes, which keeps
// the block page of a popular site cheap in every language.
//
// The messages of the built-in pages are data: one file per language in
// i18n/, embedded in the binary; operators add or override languages with
// files of their own (Options.Languages).
//
// The package imports nothing else of edgeblock.
package pages
