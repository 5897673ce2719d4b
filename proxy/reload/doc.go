// Package reload loads what the edge serves — the config, the blocklist
// (from its file or from the fleet's Redis) and the page templates — as a
// [Bundle], and commits each new bundle through one path (Reloader.commit)
// whether it comes from the start, a change of the files (watch, poll,
// SIGHUP, the admin API) or a new fleet version: apply to the edge, make
// the bundle current, record the files' status and the reload metrics,
// write the audit line and the snapshot, and schedule the next expiry.
//
// A bundle that fails to load is never applied: the last good one keeps
// serving and the error is reported with the file and line it is about.
// At start, LoadBundleForStart falls back to the last snapshot of the
// state directory for the parts whose files fail.
//
// The Reloader changes the edge only through [Edge] (Apply and
// RefreshGeo), which *proxy.Proxy implements; it imports nothing of the
// root proxy package.
package reload
