// Command envoy-config-check checks Envoy bootstrap files the way Envoy loads one (`envoy -c FILE`),
// without an Envoy binary: it reads the YAML, turns it into JSON as Envoy does (yaml_utility.cc,
// parseYamlNode: quoted scalars are strings, then bool, then int32 as a number, the rest strings),
// unmarshals it into envoy.config.bootstrap.v3.Bootstrap with protojson, unknown fields rejected
// (Envoy rejects them in static config), Any values resolved to the extension types imported below,
// and runs the protoc-gen-validate rules (ValidateAll) on the bootstrap and on every message packed
// in an Any (Envoy validates each typed_config when it builds the extension). Fields that are
// deprecated are warned about; fields or enum values disallowed by default are errors, as in Envoy.
//
// The API is go-control-plane/envoy's at the version go.mod pins (v1.32.4: its protos are Envoy's
// main after v1.33.0, the module proxy serves no v1.33.x; see e2e/tools/build).
//
// Usage: envoy-config-check FILE...   ("-" reads standard input)
//
// Every problem is printed as `FILE:LINE: PATH: MESSAGE` (PATH in the YAML's own field names, e.g.
// static_resources.listeners[1].filter_chains[0].filters[0].typed_config.stat_prefix). Exit 0: all
// files valid; 1: a file is invalid; 2: a file could not be read or parsed as YAML.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	"github.com/envoyproxy/go-control-plane/envoy/annotations"
	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	// The extensions components/router.py configures (their Any types must resolve). A config that
	// uses another fails with "unable to resolve": add its package here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const maxErrors = 100

type problem struct {
	path, msg string
	line      int
}

// --- YAML to JSON, as Envoy converts it ---------------------------------------------------------

// node is the YAML document as Envoy sees it (a google.protobuf.Value), each node knowing its
// path and line, so a protojson error on the JSON written from it names both.
type node struct {
	kind   byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	keys   []string
	vals   []*node // object values or array elements
	scalar string
	path   string
	line   int
	parent *node
}

var flexible = regexp.MustCompile(`^([a-z]+|[A-Z]+|[A-Z][a-z]+)$`)

// yaml-cpp's convert<bool>: y/n, yes/no, true/false, on/off in lower, upper or capitalised case.
func yamlBool(s string) (bool, bool) {
	if !flexible.MatchString(s) {
		return false, false
	}
	switch strings.ToLower(s) {
	case "y", "yes", "true", "on":
		return true, true
	case "n", "no", "false", "off":
		return false, true
	}
	return false, false
}

// yaml-cpp's convert<int64_t>: a C++ stream in base auto (0x hex, leading 0 octal).
func yamlInt(s string) (int64, bool) {
	if s == "" || strings.ContainsAny(s, "_oObB") {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	return v, err == nil
}

func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func convert(y *yaml.Node, path string, parent *node, warn func(problem)) *node {
	for y.Kind == yaml.AliasNode {
		y = y.Alias
	}
	n := &node{path: path, line: y.Line, parent: parent}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			n.kind = 'z'
			return n
		}
		return convert(y.Content[0], path, parent, warn)
	case yaml.MappingNode:
		n.kind = 'o'
		seen := map[string]bool{}
		for i := 0; i+1 < len(y.Content); i += 2 {
			key := y.Content[i].Value
			if seen[key] { // Envoy inserts into a map: the first value stays.
				warn(problem{child(path, key), "duplicate key: Envoy keeps the first value", y.Content[i].Line})
				continue
			}
			seen[key] = true
			n.keys = append(n.keys, key)
			n.vals = append(n.vals, convert(y.Content[i+1], child(path, key), n, warn))
		}
	case yaml.SequenceNode:
		n.kind = 'a'
		for i, e := range y.Content {
			n.vals = append(n.vals, convert(e, fmt.Sprintf("%s[%d]", path, i), n, warn))
		}
	default:
		s := y.Value
		plain := y.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
		if b, ok := yamlBool(s); plain && ok {
			n.kind, n.scalar = 'b', strconv.FormatBool(b)
		} else if v, ok := yamlInt(s); plain && ok {
			if v >= -1<<31 && v <= 1<<31-1 {
				n.kind, n.scalar = 'n', strconv.FormatInt(v, 10)
			} else {
				n.kind, n.scalar = 's', strconv.FormatInt(v, 10)
			}
		} else if plain && y.Tag == "!!null" {
			n.kind = 'z'
		} else {
			n.kind, n.scalar = 's', s
		}
	}
	return n
}

// writeJSON writes the tree one member per line and returns, per line, the node that starts there.
func writeJSON(root *node) ([]byte, map[int]*node) {
	var b bytes.Buffer
	lines := map[int]*node{}
	line := 1
	var write func(n *node, indent string)
	write = func(n *node, indent string) {
		lines[line] = n
		switch n.kind {
		case 'o', 'a':
			open, end := "{", "}"
			if n.kind == 'a' {
				open, end = "[", "]"
			}
			b.WriteString(open)
			for i, v := range n.vals {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString("\n" + indent + "  ")
				line++
				if n.kind == 'o' {
					k, _ := json.Marshal(n.keys[i])
					b.Write(k)
					b.WriteString(": ")
				}
				write(v, indent+"  ")
			}
			if len(n.vals) > 0 {
				b.WriteString("\n" + indent)
				line++
			}
			b.WriteString(end)
		case 's':
			s, _ := json.Marshal(n.scalar)
			b.Write(s)
		case 'z':
			b.WriteString("null")
		default:
			b.WriteString(n.scalar)
		}
	}
	write(root, "")
	return b.Bytes(), lines
}

func remove(n *node) {
	p := n.parent
	for i, v := range p.vals {
		if v == n {
			p.vals = append(p.vals[:i], p.vals[i+1:]...)
			if p.kind == 'o' {
				p.keys = append(p.keys[:i], p.keys[i+1:]...)
			}
			return
		}
	}
}

// protojson's errors: "proto: (line L:C): MESSAGE" or "proto: syntax error (line L:C): MESSAGE"
// (the space after "proto:" may be U+00A0: protobuf-go varies it so that nobody parses its errors).
var protojsonError = regexp.MustCompile(`^proto:[\s\x{a0}]*(syntax error )?\(line (\d+):\d+\):[\s\x{a0}]*(.*)$`)

// unmarshal fills msg from the tree; on an error it reports it at the node the error's line names,
// removes that node and tries again, so one run names every field Envoy would refuse.
func unmarshal(root *node, msg proto.Message) ([]problem, map[string]bool) {
	var found []problem
	removed := map[string]bool{}
	opts := protojson.UnmarshalOptions{DiscardUnknown: false}
	for {
		data, lines := writeJSON(root)
		proto.Reset(msg)
		err := opts.Unmarshal(data, msg)
		if err == nil {
			return found, removed
		}
		m := protojsonError.FindStringSubmatch(err.Error())
		var at *node
		if m != nil {
			l, _ := strconv.Atoi(m[2])
			at = lines[l]
		}
		if at == nil || at.parent == nil || len(found) >= maxErrors {
			found = append(found, problem{msg: err.Error(), line: root.line})
			return found, removed
		}
		text := m[3]
		if m[1] != "" {
			text = "wrong type: " + text
		}
		if strings.Contains(text, "unable to resolve") {
			text += " (a misspelt type, or an extension envoy-config-check does not import)"
		}
		found = append(found, problem{at.path, text, at.line})
		if at.parent.parent != nil && strings.HasSuffix(at.path, ".@type") {
			at = at.parent // an Any without its type is an error of its own: drop the whole Any
		}
		removed[at.path] = true
		remove(at)
	}
}

// --- protoc-gen-validate -------------------------------------------------------------------------

// goCamelCase is protoc-gen-go's name for a field (protobuf-go internal/strs.GoCamelCase), the
// name protoc-gen-validate's errors use.
func goCamelCase(s string) string {
	var b []byte
	lower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && i+1 < len(s) && lower(s[i+1]):
		case c == '.':
			b = append(b, '_')
		case c == '_' && (i == 0 || s[i-1] == '.'):
			b = append(b, 'X')
		case c == '_' && i+1 < len(s) && lower(s[i+1]):
		case '0' <= c && c <= '9':
			b = append(b, c)
		default:
			if lower(c) {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			for ; i+1 < len(s) && lower(s[i+1]); i++ {
				b = append(b, s[i+1])
			}
		}
	}
	return string(b)
}

var validationField = regexp.MustCompile(`^([A-Za-z0-9_]+)(\[.*\])?$`)

type validationError interface {
	Field() string
	Reason() string
	Cause() error
}

// flatten turns protoc-gen-validate's nested errors into one problem per failed rule, the path in
// the YAML's field names (md: the message the error's field belongs to).
func flatten(err error, path string, md protoreflect.MessageDescriptor, out *[]problem) {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		for _, e := range multi.AllErrors() {
			flatten(e, path, md, out)
		}
		return
	}
	var ve validationError
	if !errors.As(err, &ve) {
		*out = append(*out, problem{path: path, msg: err.Error()})
		return
	}
	name, index, next := ve.Field(), "", protoreflect.MessageDescriptor(nil)
	if m := validationField.FindStringSubmatch(name); m != nil && md != nil {
		index = m[2]
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			if fd := fields.Get(i); goCamelCase(string(fd.Name())) == m[1] {
				name = string(fd.Name())
				if fd.IsMap() && index != "" { // a map is a YAML mapping: name.key, not name[key]
					index = "." + index[1:len(index)-1]
					fd = fd.MapValue()
				}
				next = fd.Message()
				break
			}
		}
		oneofs := md.Oneofs()
		for i := 0; i < oneofs.Len(); i++ {
			if od := oneofs.Get(i); goCamelCase(string(od.Name())) == m[1] {
				name = string(od.Name())
			}
		}
	}
	here := child(path, name+index)
	if ve.Cause() != nil && ve.Reason() == "embedded message failed validation" {
		flatten(ve.Cause(), here, next, out)
		return
	}
	msg := ve.Reason()
	if ve.Cause() != nil {
		msg += ": " + ve.Cause().Error()
	}
	*out = append(*out, problem{path: here, msg: msg})
}

func validate(msg proto.Message, path string, out *[]problem) {
	v, ok := msg.(interface{ ValidateAll() error })
	if !ok {
		return
	}
	if err := v.ValidateAll(); err != nil {
		flatten(err, path, msg.ProtoReflect().Descriptor(), out)
	}
}

// walk validates every message packed in an Any (ValidateAll stops at an Any) and reports what
// Envoy's deprecated-field check reports: deprecated fields and enum values set (warnings), and the
// ones disallowed by default (errors: Envoy refuses them unless a runtime flag allows them).
func walk(m protoreflect.Message, path string, errs, warns *[]problem) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*errs = append(*errs, problem{path: path, msg: err.Error()})
			return
		}
		validate(inner, path, errs)
		walk(inner.ProtoReflect(), path, errs, warns)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := child(path, string(fd.Name()))
		opts, _ := fd.Options().(*descriptorpb.FieldOptions)
		if opts.GetDeprecated() {
			if proto.GetExtension(opts, annotations.E_DisallowedByDefault).(bool) {
				*errs = append(*errs, problem{path: p, msg: "deprecated and disallowed by default (" + string(fd.FullName()) + ")"})
			} else {
				*warns = append(*warns, problem{path: p, msg: "deprecated (" + string(fd.FullName()) + ")"})
			}
		}
		visit := func(p string, v protoreflect.Value) {
			switch {
			case fd.Message() != nil && !fd.IsMap() || fd.IsMap() && fd.MapValue().Message() != nil:
				walk(v.Message(), p, errs, warns)
			case fd.Enum() != nil || fd.IsMap() && fd.MapValue().Enum() != nil:
				ev := fd.Enum().Values().ByNumber(v.Enum())
				if ev == nil {
					return
				}
				eopts, _ := ev.Options().(*descriptorpb.EnumValueOptions)
				if eopts.GetDeprecated() {
					if proto.GetExtension(eopts, annotations.E_DisallowedByDefaultEnum).(bool) {
						*errs = append(*errs, problem{path: p, msg: "enum value " + string(ev.Name()) + " is deprecated and disallowed by default"})
					} else {
						*warns = append(*warns, problem{path: p, msg: "enum value " + string(ev.Name()) + " is deprecated"})
					}
				}
			}
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				visit(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i))
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil || fd.MapValue().Enum() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(child(p, k.String()), mv)
					return true
				})
			}
		default:
			visit(p, v)
		}
		return true
	})
}

// --- main ----------------------------------------------------------------------------------------

// lineOf: the line of the deepest node of the tree on the path (a missing field: its parent's).
func lineOf(index map[string]int, path string) int {
	for p := path; ; {
		if l, ok := index[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return index[""]
		}
		p = p[:i]
	}
}

func check(data []byte) (errs, warns []problem, fatal error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	warn := func(p problem) { warns = append(warns, p) }
	root := convert(&doc, "", nil, warn)
	if root.kind != 'o' {
		return nil, nil, errors.New("not a YAML mapping (an Envoy bootstrap is one)")
	}
	index := map[string]int{}
	var note func(n *node)
	note = func(n *node) {
		index[n.path] = n.line
		for _, v := range n.vals {
			note(v)
		}
	}
	note(root)

	msg := &bootstrap.Bootstrap{}
	errs, removed := unmarshal(root, msg)
	var rules []problem
	validate(msg, "", &rules)
	walk(msg.ProtoReflect(), "", &rules, &warns)
	parent := func(path string) string {
		if i := strings.LastIndexAny(path, ".["); i >= 0 {
			return path[:i]
		}
		return ""
	}
	dropped := map[string]bool{}
	for p := range removed {
		dropped[parent(p)] = true
	}
	for _, p := range rules {
		// A field dropped above, then missed by a required rule (on it, or on its oneof).
		if removed[p.path] || strings.Contains(p.msg, "required") && dropped[parent(p.path)] {
			continue
		}
		p.line = lineOf(index, p.path)
		errs = append(errs, p)
	}
	for i := range warns {
		if warns[i].line == 0 {
			warns[i].line = lineOf(index, warns[i].path)
		}
	}
	order := func(ps []problem) {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].line < ps[j].line })
	}
	order(errs)
	order(warns)
	return errs, warns, nil
}

func apiVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "github.com/envoyproxy/go-control-plane/envoy" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func main() {
	files := os.Args[1:]
	if len(files) == 0 || files[0] == "-h" || files[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: envoy-config-check FILE...  (checks Envoy bootstrap YAML against go-control-plane/envoy "+apiVersion()+")")
		os.Exit(2)
	}
	status := 0
	for _, name := range files {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		var errs, warns []problem
		if err == nil {
			errs, warns, err = check(data)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			status = max(status, 2)
			continue
		}
		for _, w := range warns {
			fmt.Printf("%s:%d: warning: %s: %s\n", name, w.line, w.path, w.msg)
		}
		for _, e := range errs {
			path := e.path
			if path == "" {
				path = "(bootstrap)"
			}
			fmt.Printf("%s:%d: %s: %s\n", name, e.line, path, e.msg)
		}
		if len(errs) > 0 {
			fmt.Printf("%s: invalid: %d error(s) (envoy.config.bootstrap.v3.Bootstrap, go-control-plane/envoy %s)\n", name, len(errs), apiVersion())
			status = max(status, 1)
		} else {
			fmt.Printf("%s: valid (envoy.config.bootstrap.v3.Bootstrap, go-control-plane/envoy %s)\n", name, apiVersion())
		}
	}
	os.Exit(status)
}
