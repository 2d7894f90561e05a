package partner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// DecodeError reports a Partner API answer that does not have the expected shape: malformed
// JSON, a value of the wrong type, an unknown enum value or a missing required field. Unknown
// fields are not errors: Jifeline adds fields over time.
type DecodeError struct {
	// What is the kind of answer, e.g. "ticket" or "ticket list".
	What string
	// Field is the JSON path of the offending field, e.g. "state" or "result[3].created_at";
	// empty when the JSON as a whole is malformed.
	Field string
	Err   error
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "decode " + e.What + ": " + e.Err.Error()
	}
	return fmt.Sprintf("decode %s: field %q: %v", e.What, e.Field, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

var errMissing = errors.New("missing required value")

// page is the Partner API list envelope {"query": {...}, "result": [...], "total": N}. The echo
// of the query is not needed and not decoded.
type page[T any] struct {
	Result []T   `json:"result"`
	Total  int64 `json:"total"`
}

// decode unmarshals data into v. On failure it decodes again, field by field, to name the field
// at fault; errors are rare, so the common path pays nothing for that.
func decode(what string, data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return &DecodeError{What: what, Err: err}
	}
	scratch := reflect.New(reflect.TypeOf(v).Elem()).Elem()
	if field, ferr := locate(data, scratch, ""); ferr != nil {
		return &DecodeError{What: what, Field: field, Err: ferr}
	}
	return &DecodeError{What: what, Err: err}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// locate decodes data into v one JSON member or element at a time and returns the path and error
// of the first one that fails.
func locate(data []byte, v reflect.Value, path string) (string, error) {
	t := v.Type()
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		// Types with their own decoding (Time, the enums, Connector); Connector names the
		// member at fault with a fieldError.
	case t.Kind() == reflect.Pointer:
		if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
			return "", nil
		}
		return locate(data, reflect.New(t.Elem()).Elem(), path)
	case t.Kind() == reflect.Struct:
		var members map[string]json.RawMessage
		if err := json.Unmarshal(data, &members); err != nil {
			return path, describe(err, "an object")
		}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			raw, ok := members[name]
			if name == "" || name == "-" || !ok {
				continue
			}
			if p, err := locate(raw, v.Field(i), join(path, name)); err != nil {
				return p, err
			}
		}
		return "", nil
	case t.Kind() == reflect.Slice:
		if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
			return "", nil
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(data, &elems); err != nil {
			return path, describe(err, "an array")
		}
		for i, raw := range elems {
			if p, err := locate(raw, reflect.New(t.Elem()).Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return p, err
			}
		}
		return "", nil
	}
	if err := json.Unmarshal(data, v.Addr().Interface()); err != nil {
		if fe, ok := errors.AsType[*fieldError](err); ok {
			return join(path, fe.Field), fe.Err
		}
		return path, describe(err, "")
	}
	return "", nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe turns encoding/json's type errors, which name Go types, into ones that name the JSON
// type wanted; other errors (from the enums and Time) are already clear.
func describe(err error, want string) error {
	te, ok := errors.AsType[*json.UnmarshalTypeError](err)
	if !ok {
		return err
	}
	if want == "" {
		want = jsonKind(te.Type)
	}
	return fmt.Errorf("want %s, got %s", want, te.Value)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range for " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonString returns the string a JSON string literal holds, without allocating for the plain
// strings the enums use.
func jsonString(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		return string(b[1 : len(b)-1]), nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("want a string, got %s", jsonValueKind(b))
	}
	return s, nil
}

// jsonValueKind names the kind of a JSON value without echoing it.
func jsonValueKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// missing returns the name of a required field the record lacks, or "". Such a record is of no
// use, whatever else it holds.
func (t *Ticket) missing() string {
	switch {
	case t.ID == "":
		return "id"
	case t.State == "":
		return "state"
	}
	return ""
}

func (c *Connector) missing() string {
	if c.ID == "" {
		return "id"
	}
	return ""
}

func (s *Session) missing() string {
	switch {
	case s.ID == "":
		return "id"
	case s.State == "":
		return "state"
	}
	return ""
}

// record is a type the Partner API returns: Ticket, Connector or Session.
type record[T any] interface {
	*T
	missing() string
}

// decodeRecord decodes one record.
func decodeRecord[T any, P record[T]](what string, data []byte, v P) error {
	if err := decode(what, data, v); err != nil {
		return err
	}
	if f := v.missing(); f != "" {
		return &DecodeError{What: what, Field: f, Err: errMissing}
	}
	return nil
}

// decodePage decodes a list envelope into p, reusing its Result slice.
func decodePage[T any, P record[T]](what string, data []byte, p *page[T]) error {
	// encoding/json decodes into the elements already in the slice's capacity without zeroing
	// them, so clear them first or fields absent from this page would keep the last page's values.
	clear(p.Result[:cap(p.Result)])
	p.Result, p.Total = p.Result[:0], 0
	if err := decode(what, data, p); err != nil {
		return err
	}
	for i := range p.Result {
		if f := P(&p.Result[i]).missing(); f != "" {
			return &DecodeError{What: what, Field: fmt.Sprintf("result[%d].%s", i, f), Err: errMissing}
		}
	}
	return nil
}
