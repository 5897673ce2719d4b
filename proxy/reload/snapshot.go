package reload

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
)

// SnapshotDir is the directory under the state directory that holds the
// snapshot: manifest.json and the files it names.
const SnapshotDir = "snapshot"

// snapshotKeep is how long a snapshot file no manifest names is kept, so
// that another process sharing the directory (replicas on one volume) can
// finish writing a manifest that names it.
const snapshotKeep = 10 * time.Minute

// SnapshotFile is one file of a snapshot, as recorded in its manifest.
type SnapshotFile struct {
	// Path is the file the content was read from when it was applied.
	Path string `json:"path"`
	// SHA256 is the hex SHA-256 of the content.
	SHA256 string `json:"sha256"`
	// File is the name of the copy in the snapshot directory.
	File string `json:"file"`
	// Data is the content; it is not part of the manifest.
	Data []byte `json:"-"`
}

// Snapshot describes the last applied state: the config, the blocklist
// and, if the config names one, the page template. It is stored as
// manifest.json beside copies of the files.
type Snapshot struct {
	Version   int           `json:"version"`
	WrittenAt time.Time     `json:"written_at"`
	Hostname  string        `json:"hostname,omitempty"`
	PID       int           `json:"pid"`
	Rules     int           `json:"rules"`
	Config    SnapshotFile  `json:"config"`
	Blocklist SnapshotFile  `json:"blocklist"`
	Template  *SnapshotFile `json:"template,omitempty"`
}

// ReadSnapshot reads the snapshot in stateDir, with the files' content,
// and checks every file against its hash. The error says why there is no
// usable snapshot (none was written yet, or it is damaged).
func ReadSnapshot(stateDir string) (*Snapshot, error) {
	dir := filepath.Join(stateDir, SnapshotDir)
	mpath := filepath.Join(dir, "manifest.json")
	data, err := os.ReadFile(mpath)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(dir, staleManifest)); serr == nil {
			return nil, fmt.Errorf("%s: stale: the write of a newer state failed (a full or read-only disk?), so a start from it would undo what was applied since; it is kept as %s for inspection", dir, staleManifest)
		}
		return nil, fmt.Errorf("%s: none written yet", mpath)
	}
	if err != nil {
		return nil, err
	}
	var m Snapshot
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("%s: version %d, want 1", mpath, m.Version)
	}
	files := []*SnapshotFile{&m.Config, &m.Blocklist}
	if m.Template != nil {
		files = append(files, m.Template)
	}
	for _, f := range files {
		if f.File == "" || f.File != filepath.Base(f.File) {
			return nil, fmt.Errorf("%s: bad file name %q", mpath, f.File)
		}
		p := filepath.Join(dir, f.File)
		if f.Data, err = os.ReadFile(p); err != nil {
			return nil, err
		}
		if sum := HashOf(f.Data); sum != f.SHA256 {
			return nil, fmt.Errorf("%s: sha256 %s, the manifest says %s", p, sum, f.SHA256)
		}
	}
	return &m, nil
}

// staleManifest is what manifest.json is renamed to when a newer state
// could not be written: ReadSnapshot then refuses the snapshot rather than
// start from a state older than the last applied one. A rename needs no
// free space, so it works on a full disk.
const staleManifest = "manifest.stale.json"

// markSnapshotStale renames the manifest in stateDir to staleManifest
// (see there). It returns nil when there is no manifest.
func markSnapshotStale(stateDir string) error {
	dir := filepath.Join(stateDir, SnapshotDir)
	err := os.Rename(filepath.Join(dir, "manifest.json"), filepath.Join(dir, staleManifest))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// snapshotPart is what writeSnapshot needs of one applied file: its path,
// hash and, when at hand, its content. Without the content, the snapshot
// directory must already hold a copy with that hash.
type snapshotPart struct {
	path, sha256 string
	data         []byte
}

// writeSnapshot records an applied state in stateDir: a copy of each file
// named by its hash, then manifest.json naming them, each written
// atomically, so that a reader sees the old snapshot or the new one. It
// does nothing when the manifest already records this state. Copies no
// manifest names are removed once older than snapshotKeep.
func writeSnapshot(stateDir string, cfg, list snapshotPart, tmpl *snapshotPart, rules int, now time.Time) (bool, error) {
	dir := filepath.Join(stateDir, SnapshotDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	m := Snapshot{Version: 1, WrittenAt: now.UTC(), PID: os.Getpid(), Rules: rules}
	m.Hostname, _ = os.Hostname()
	files := []struct {
		kind, ext string
		part      snapshotPart
		out       *SnapshotFile
	}{{"config", ".yaml", cfg, &m.Config}, {"blocklist", ".txt", list, &m.Blocklist}}
	if tmpl != nil {
		m.Template = &SnapshotFile{}
		files = append(files, struct {
			kind, ext string
			part      snapshotPart
			out       *SnapshotFile
		}{"template", ".html", *tmpl, m.Template})
	}
	if old, err := readManifest(dir); err == nil && sameState(dir, old, cfg, list, tmpl) {
		return false, nil
	}
	for _, f := range files {
		name := f.kind + "-" + f.part.sha256 + f.ext
		p := filepath.Join(dir, name)
		*f.out = SnapshotFile{Path: f.part.path, SHA256: f.part.sha256, File: name}
		if _, err := os.Stat(p); err == nil {
			// Kept: mark it as in use for another writer's clean-up.
			os.Chtimes(p, now, now)
			continue
		}
		if f.part.data == nil {
			return false, fmt.Errorf("%s: no copy of %s with sha256 %s to refer to", dir, f.part.path, f.part.sha256)
		}
		if err := blocklist.WriteFileAtomic(p, f.part.data); err != nil {
			return false, err
		}
	}
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return false, err
	}
	if err := blocklist.WriteFileAtomic(filepath.Join(dir, "manifest.json"), append(data, '\n')); err != nil {
		return false, err
	}
	os.Remove(filepath.Join(dir, staleManifest))
	cleanSnapshots(dir, &m, now)
	return true, nil
}

func readManifest(dir string) (*Snapshot, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m Snapshot
	return &m, json.Unmarshal(data, &m)
}

// sameState reports whether old records the files of the new state, with
// their copies present in dir.
func sameState(dir string, old *Snapshot, cfg, list snapshotPart, tmpl *snapshotPart) bool {
	same := func(f *SnapshotFile, p snapshotPart) bool {
		if f.Path != p.path || f.SHA256 != p.sha256 {
			return false
		}
		_, err := os.Stat(filepath.Join(dir, f.File))
		return err == nil
	}
	if (old.Template == nil) != (tmpl == nil) || (tmpl != nil && !same(old.Template, *tmpl)) {
		return false
	}
	return old.Version == 1 && same(&old.Config, cfg) && same(&old.Blocklist, list)
}

// cleanSnapshots removes copies that m does not name and that have not
// been used for snapshotKeep.
func cleanSnapshots(dir string, m *Snapshot, now time.Time) {
	keep := map[string]bool{m.Config.File: true, m.Blocklist.File: true}
	if m.Template != nil {
		keep[m.Template.File] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if keep[n] || !(strings.HasPrefix(n, "config-") || strings.HasPrefix(n, "blocklist-") || strings.HasPrefix(n, "template-")) {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > snapshotKeep {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// DefaultStateDir returns the state directory serve uses when neither
// -state-dir nor EDGEBLOCK_STATE_DIR is given: $STATE_DIRECTORY (set by
// systemd's StateDirectory=; the first of a list), else /var/lib/edgeblock
// if that directory exists and is writable, else "" (no snapshots).
func DefaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	const varLib = "/var/lib/edgeblock"
	if fi, err := os.Stat(varLib); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp(varLib, ".write-test-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return varLib
		}
	}
	return ""
}

// manifest returns s without the files' content.
func (s *Snapshot) manifest() *Snapshot {
	m := *s
	m.Config.Data, m.Blocklist.Data = nil, nil
	if s.Template != nil {
		t := *s.Template
		t.Data = nil
		m.Template = &t
	}
	return &m
}
