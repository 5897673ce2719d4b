package reload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/pages"
	"github.com/edgeblock/edgeblock/proxy/config"
)

// Parts of the state that a start can take from the snapshot.
const (
	PartConfig    = "config"
	PartTemplate  = "template"
	PartBlocklist = "blocklist"
)

// LoadBundleForStart is LoadBundle for serve. With a state directory that
// holds a snapshot, each part that is bad or missing on disk — the config,
// the page template, the blocklist — is taken from the snapshot instead,
// as is a blocklist that CheckDrop refuses against the snapshot's; the
// bundle's FromSnapshot and Problems say which and why. It fails only when
// a part is bad and there is no usable snapshot; the error then lists the
// problems of the files and why no snapshot could be used.
func LoadBundleForStart(path, stateDir string, now time.Time) (*Bundle, error) {
	b, err := LoadBundle(path)
	if stateDir == "" {
		return b, err
	}
	snap, serr := ReadSnapshot(stateDir)
	if abs, aerr := filepath.Abs(path); snap != nil && aerr == nil && snap.Config.Path != abs {
		// A state directory shared by edges with different configs.
		snap, serr = nil, fmt.Errorf("the snapshot in %s is of another config, %s", stateDir, snap.Config.Path)
	}
	if snap == nil {
		if err != nil && serr != nil {
			err = errors.Join(err, fmt.Errorf("no snapshot to start from: %w", serr))
		}
		if b != nil {
			b.StateDir = stateDir
		}
		return b, err
	}
	if err == nil {
		// The files are good; still, a list that drops too much of what
		// was last applied is refused, as a reload would refuse it, and
		// so is a fleet version that does not descend from it.
		prev, perr := blocklist.Parse(snapListName(b.Config, snap), snap.Blocklist.Data)
		if perr != nil {
			b.StateDir = stateDir
			return b, nil
		}
		derr := error(nil)
		if b.Config.FromFleet() {
			derr = checkFleetStart(b.Config, b.Fleet, b.List.SHA256(), snap)
		}
		if derr == nil {
			derr = blocklist.CheckDrop(b.List, prev, b.Config.Blocklist.MaxDrop, now)
		}
		if derr == nil {
			b.StateDir = stateDir
			return b, nil
		}
		b.List, b.raw.list, b.Fleet = prev, snap.Blocklist.Data, nil
		b.FromSnapshot = []string{PartBlocklist}
		b.Problems = []string{derr.Error()}
		b.partErrs = map[string]error{PartBlocklist: derr}
		b.Snapshot, b.StateDir = snap.manifest(), stateDir
		return b, nil
	}
	return startFromSnapshot(path, stateDir, snap)
}

// snapListName is the name the snapshot's list is parsed under: the
// blocklist file, or in fleet mode the name it was applied under
// (fleet:vN, which carries its version).
func snapListName(cfg *config.Config, snap *Snapshot) string {
	if cfg.FromFleet() {
		return snap.Blocklist.Path
	}
	return cfg.Blocklist.File
}

// startFromSnapshot loads each part from disk and, where that fails, from
// snap.
func startFromSnapshot(path, stateDir string, snap *Snapshot) (*Bundle, error) {
	b := &Bundle{StateDir: stateDir, Snapshot: snap.manifest(), raw: &rawFiles{}, partErrs: map[string]error{}}
	problem := func(part string, err error) {
		b.FromSnapshot = append(b.FromSnapshot, part)
		b.partErrs[part] = err
		for line := range strings.SplitSeq(err.Error(), "\n") {
			b.Problems = append(b.Problems, line)
		}
	}
	data, err := os.ReadFile(path)
	if err == nil {
		b.Config, err = config.ParseConfig(path, data)
		b.raw.config = data
	} else {
		err = &config.ConfigError{Problems: []string{err.Error()}}
	}
	if err != nil {
		problem(PartConfig, err)
		// The snapshot's config under the real path: relative paths
		// resolve as they did, and reloads read the real file.
		if b.Config, err = config.ParseConfig(path, snap.Config.Data); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", snap.Config.File, err)
		}
		b.raw.config = snap.Config.Data
	}
	cfg := b.Config
	if b.Renderer, b.TemplateSHA256, b.raw.template, err = LoadRenderer(cfg); err != nil {
		problem(PartTemplate, err)
		// The built-in pages (and the snapshot's block template), in the
		// built-in languages.
		o := pageOptions(cfg)
		if snap.Template != nil {
			o.Template, o.TemplateFile = string(snap.Template.Data), cfg.Pages.Template
			b.TemplateSHA256, b.raw.template = snap.Template.SHA256, snap.Template.Data
		} else {
			b.TemplateSHA256, b.raw.template = "", nil
		}
		if b.Renderer, err = pages.NewRenderer(o); err != nil {
			o.DefaultLanguage = "" // one from languages_dir, which did not load
			if b.Renderer, err = pages.NewRenderer(o); err != nil {
				return nil, fmt.Errorf("snapshot template: %w", err)
			}
		}
	}
	prev, err := blocklist.Parse(snapListName(cfg, snap), snap.Blocklist.Data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", filepath.Join(stateDir, SnapshotDir, snap.Blocklist.File), err)
	}
	b.List, b.raw.list, b.Fleet, err = loadList(cfg)
	if err == nil {
		err = blocklist.CheckDrop(b.List, prev, cfg.Blocklist.MaxDrop, time.Now())
	}
	if err != nil {
		b.Fleet = nil
		problem(PartBlocklist, err)
		b.List, b.raw.list = prev, snap.Blocklist.Data
	}
	return b, nil
}
