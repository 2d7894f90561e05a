package partner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// fieldError is a decoding error of one member of a record that decodes itself; locate turns
// it into the DecodeError's field path.
type fieldError struct {
	Field string
	Err   error
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldError) Unwrap() error { return e.Err }

// UnmarshalJSON decodes both connector shapes: {"id": "<uuid>", ...} and {"id": 123, "uuid":
// "<uuid>", ...}. ID becomes the UUID in both; an integer id without a uuid is an error naming
// "uuid".
func (c *Connector) UnmarshalJSON(data []byte) error {
	type plain Connector // the same fields without this method
	aux := struct {
		*plain
		ID   json.RawMessage `json:"id"` // shadows plain's ID
		UUID *string         `json:"uuid"`
	}{plain: (*plain)(c)}
	*c = Connector{}
	if err := json.Unmarshal(data, &aux); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return &fieldError{Field: te.Field, Err: describe(err, "")}
		}
		return err
	}
	uuid := ""
	if aux.UUID != nil {
		uuid = *aux.UUID
	}
	id := bytes.TrimSpace(aux.ID)
	switch {
	case len(id) == 0 || bytes.Equal(id, []byte("null")):
		c.ID = uuid // missing() reports a connector with neither
	case id[0] == '"':
		s, err := jsonString(id)
		if err != nil {
			return &fieldError{Field: "id", Err: err}
		}
		c.ID = s
		if uuid != "" {
			c.ID = uuid
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		n, err := strconv.ParseInt(string(id), 10, 64)
		if err != nil {
			return &fieldError{Field: "id", Err: fmt.Errorf("want a string UUID or an integer, got number %s", id)}
		}
		if uuid == "" {
			return &fieldError{Field: "uuid", Err: fmt.Errorf("%w: an integer id needs the connector's UUID", errMissing)}
		}
		c.ID, c.Number, c.HasNumber = uuid, n, true
	default:
		return &fieldError{Field: "id", Err: fmt.Errorf("want a string UUID or an integer, got %s", jsonValueKind(id))}
	}
	return nil
}
