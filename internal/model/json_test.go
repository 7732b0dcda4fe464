package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// fill sets every member of v, all the way down: strings (with text that
// needs escapes), numbers, true, pointers to filled values and slices of
// two filled values; with zero, strings are "", numbers 0 and flags false
// but pointers and slices are still there. A type AppendJSON does not know
// (a new member of a new kind) fails t.
func fill(t *testing.T, v reflect.Value, n *int, zero bool) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), n, zero)
		}
	case reflect.String:
		if !zero {
			v.SetString("s" + strconv.Itoa(*n) + " \"q\" <&> \\ \u2028 é \x01")
		}
	case reflect.Bool:
		v.SetBool(!zero)
	case reflect.Int32, reflect.Int64:
		if !zero {
			v.SetInt(int64(-*n))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n, zero)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(t, v.Index(0), n, zero)
		fill(t, v.Index(1), n, zero)
	default:
		t.Fatalf("fill: a member of kind %s (%s): teach fill and AppendJSON", v.Kind(), v.Type())
	}
}

// sameAsMarshal fails t unless enc(v) is JSON that decodes to what
// json.Marshal(v) decodes to.
func sameAsMarshal[T any](t *testing.T, v *T, enc func(*T, []byte) []byte) {
	t.Helper()
	got := enc(v, []byte("prefix"))
	if string(got[:6]) != "prefix" {
		t.Fatalf("AppendJSON did not append: %s", got)
	}
	got = got[6:]
	if !json.Valid(got) {
		t.Fatalf("AppendJSON wrote what is not JSON:\n%s", got)
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b T
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("AppendJSON wrote what does not decode: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("AppendJSON and encoding/json differ:\n%s\n%s", got, want)
	}
}

func appendCall(c *Call, dst []byte) []byte               { return c.AppendJSON(dst) }
func appendParticipant(p *Participant, dst []byte) []byte { return p.AppendJSON(dst) }

// TestAppendJSON: a call and a participant with every member set, with
// members present but zero, with none, and with each top-level member
// alone, encode to what decodes as encoding/json's encoding does.
func TestAppendJSON(t *testing.T) {
	check := func(t *testing.T, typ reflect.Type, run func(reflect.Value)) {
		for _, zero := range []bool{false, true} {
			n := 0
			full := reflect.New(typ)
			fill(t, full.Elem(), &n, zero)
			run(full)
			for i := range typ.NumField() {
				one := reflect.New(typ)
				one.Elem().Field(i).Set(full.Elem().Field(i))
				run(one)
			}
		}
		run(reflect.New(typ))
	}
	t.Run("call", func(t *testing.T) {
		check(t, reflect.TypeFor[Call](), func(v reflect.Value) { sameAsMarshal(t, v.Interface().(*Call), appendCall) })
	})
	t.Run("participant", func(t *testing.T) {
		check(t, reflect.TypeFor[Participant](), func(v reflect.Value) {
			sameAsMarshal(t, v.Interface().(*Participant), appendParticipant)
		})
	})
}

// TestAppendJSONExamples: the create-call and join-meeting bodies of
// examples/ and the rosters of testdata/seeds encode alike.
func TestAppendJSONExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.json")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c Call
		if json.Unmarshal(b, &c) != nil {
			continue // not a call
		}
		sameAsMarshal(t, &c, appendCall)
	}
	b, err := os.ReadFile("../../cmd/botd-loadgen/testdata/roster-2-participants.json")
	if err != nil {
		t.Fatal(err)
	}
	var n struct {
		Value []struct {
			ResourceData []Participant `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.Unmarshal(b, &n); err != nil || len(n.Value) == 0 || len(n.Value[0].ResourceData) == 0 {
		t.Fatalf("roster: %v", err)
	}
	for i := range n.Value[0].ResourceData {
		sameAsMarshal(t, &n.Value[0].ResourceData[i], appendParticipant)
	}
}

// FuzzAppendJSON: whatever call or participant encoding/json decodes,
// AppendJSON encodes to what decodes alike.
func FuzzAppendJSON(f *testing.F) {
	for _, zero := range []bool{false, true} {
		n := 0
		var c Call
		var p Participant
		fill(&testing.T{}, reflect.ValueOf(&c).Elem(), &n, zero)
		fill(&testing.T{}, reflect.ValueOf(&p).Elem(), &n, zero)
		bc, _ := json.Marshal(&c)
		bp, _ := json.Marshal(&p)
		f.Add(bc)
		f.Add(bp)
	}
	files, _ := filepath.Glob("../../examples/*.json")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Call
		if json.Unmarshal(b, &c) == nil {
			sameAsMarshal(t, &c, appendCall)
		}
		var p Participant
		if json.Unmarshal(b, &p) == nil {
			sameAsMarshal(t, &p, appendParticipant)
		}
	})
}
