package pages

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/edgeblock/edgeblock/pages/langtag"
)

// builtinFS holds the built-in translations, one file per language, named
// by its language tag (de.json, pt-BR.json).
//
//go:embed i18n/*.json
var builtinFS embed.FS

// Language is one language of the pages: its messages, text direction and
// name.
type Language struct {
	// Tag is the BCP 47 tag, in canonical case ("de", "pt-BR"); it is sent
	// as Content-Language and set as the page's lang.
	Tag string
	// Name is the language's name in itself ("Deutsch").
	Name string
	// Dir is "ltr" or "rtl".
	Dir string
	// Messages maps message names to text; every language has every
	// message of the built-in English file.
	Messages map[string]string
}

// languageFile is the JSON form of a translation file.
type languageFile struct {
	Name     string            `json:"name"`
	Dir      string            `json:"dir"`
	Messages map[string]string `json:"messages"`
}

// LanguageFile is an operator's translation file: a built-in language it
// names is overridden message by message, any other is added and must have
// every message.
type LanguageFile struct {
	// Name is the file name, "TAG.json"; it names the language and is
	// used in errors (give the full path).
	Name string
	Data []byte
}

// placeholders are the values a message may hold, by message name: a lead
// holds {host} once (the page puts the name there), error_code {status},
// geo_title {country}.
func placeholders(msg string) []string {
	switch {
	case msg == "geo_title":
		return []string{"{country}"}
	case strings.HasSuffix(msg, "_lead"):
		return []string{"{host}"}
	case msg == "error_code":
		return []string{"{status}"}
	}
	return nil
}

// builtinLanguages returns the embedded languages by tag, in a map of its
// own (the Languages are shared and must not be changed).
func builtinLanguages() (map[string]*Language, error) {
	langs, err := parsedBuiltin()
	return maps.Clone(langs), err
}

// parsedBuiltin parses the embedded translation files once.
var parsedBuiltin = sync.OnceValues(parseBuiltin)

func parseBuiltin() (map[string]*Language, error) {
	names, err := fs.Glob(builtinFS, "i18n/*.json")
	if err != nil {
		return nil, err
	}
	langs := map[string]*Language{}
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		l, err := parseLanguage(path.Base(n), data)
		if err != nil {
			return nil, err
		}
		langs[l.Tag] = l
	}
	en := langs["en"]
	if en == nil {
		return nil, errors.New("pages: no built-in en.json")
	}
	for _, l := range langs {
		if err := checkComplete(l, en, "pages/i18n/"+l.Tag+".json"); err != nil {
			return nil, err
		}
	}
	return langs, nil
}

// parseLanguage parses one translation file named TAG.json.
func parseLanguage(name string, data []byte) (*Language, error) {
	base := path.Base(name)
	tagText, ok := strings.CutSuffix(base, ".json")
	if !ok {
		return nil, fmt.Errorf("%s: a translation file is named TAG.json, such as de.json", name)
	}
	tag, err := langtag.Canonical(tagText)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var f languageFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %v (want {\"name\": ..., \"dir\": \"ltr\" or \"rtl\", \"messages\": {...}})", name, err)
	}
	switch f.Dir {
	case "ltr", "rtl", "":
	default:
		return nil, fmt.Errorf("%s: dir %q: want ltr or rtl", name, f.Dir)
	}
	for k, v := range f.Messages {
		for _, p := range placeholders(k) {
			if strings.Count(v, p) != 1 {
				return nil, fmt.Errorf("%s: message %s: want %s exactly once, in %q", name, k, p, v)
			}
		}
	}
	return &Language{Tag: tag, Name: f.Name, Dir: f.Dir, Messages: f.Messages}, nil
}

// checkComplete reports the messages of want that l lacks, and those it has
// that want does not know.
func checkComplete(l, want *Language, file string) error {
	var missing, unknown []string
	for k := range want.Messages {
		if _, ok := l.Messages[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range l.Messages {
		if _, ok := want.Messages[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(unknown)
	switch {
	case len(missing) > 0:
		return fmt.Errorf("%s: missing messages %s (copy them from pages/i18n/en.json)", file, strings.Join(missing, ", "))
	case len(unknown) > 0:
		return fmt.Errorf("%s: unknown messages %s", file, strings.Join(unknown, ", "))
	case l.Name == "":
		return fmt.Errorf("%s: no name (the language's name in itself)", file)
	case l.Dir == "":
		return fmt.Errorf("%s: no dir (ltr or rtl)", file)
	}
	return nil
}

// loadLanguages returns the built-in languages with the operator's files
// applied, sorted by tag.
func loadLanguages(files []LanguageFile) ([]*Language, error) {
	langs, err := builtinLanguages()
	if err != nil {
		return nil, err
	}
	en := langs["en"]
	var errs []error
	for _, f := range files {
		l, err := parseLanguage(f.Name, f.Data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if base, ok := langs[l.Tag]; ok {
			// An override: the operator's messages replace the built-in ones.
			merged := *base
			merged.Messages = maps.Clone(base.Messages)
			maps.Copy(merged.Messages, l.Messages)
			if l.Name != "" {
				merged.Name = l.Name
			}
			if l.Dir != "" {
				merged.Dir = l.Dir
			}
			l = &merged
		}
		if err := checkComplete(l, en, f.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		langs[l.Tag] = l
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(langs) > maxLanguages {
		return nil, fmt.Errorf("pages: %d languages; at most %d are supported", len(langs), maxLanguages)
	}
	return slices.SortedFunc(maps.Values(langs), func(a, b *Language) int { return strings.Compare(a.Tag, b.Tag) }), nil
}

// maxLanguages bounds the languages, so that negotiation can keep its
// bookkeeping on the stack.
const maxLanguages = 64

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
