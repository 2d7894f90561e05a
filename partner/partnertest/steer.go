package partnertest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/obdorch/obdorch/partner"
)

// faultsJSON is Faults on the steering surface, with durations as strings such as "250ms".
type faultsJSON struct {
	Hang              bool   `json:"hang,omitempty"`
	Latency           string `json:"latency,omitempty"`
	RateLimited       int    `json:"rate_limited,omitempty"`
	RetryAfter        string `json:"retry_after,omitempty"`
	ServerErrors      int    `json:"server_errors,omitempty"`
	ServerErrorStatus int    `json:"server_error_status,omitempty"`
	PathPrefix        string `json:"path_prefix,omitempty"`
}

func (j faultsJSON) faults() (Faults, error) {
	ft := Faults{
		Hang:              j.Hang,
		RateLimited:       j.RateLimited,
		ServerErrors:      j.ServerErrors,
		ServerErrorStatus: j.ServerErrorStatus,
		PathPrefix:        j.PathPrefix,
	}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"latency", j.Latency, &ft.Latency}, {"retry_after", j.RetryAfter, &ft.RetryAfter}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return Faults{}, fmt.Errorf("field %q: want a duration such as \"250ms\", got %q", d.name, d.s)
		}
		*d.dst = v
	}
	return ft, nil
}

func toFaultsJSON(ft Faults) faultsJSON {
	j := faultsJSON{
		Hang:              ft.Hang,
		RateLimited:       ft.RateLimited,
		ServerErrors:      ft.ServerErrors,
		ServerErrorStatus: ft.ServerErrorStatus,
		PathPrefix:        ft.PathPrefix,
	}
	if ft.Latency > 0 {
		j.Latency = ft.Latency.String()
	}
	if ft.RetryAfter > 0 {
		j.RetryAfter = ft.RetryAfter.String()
	}
	return j
}

// steerRoutes serves the steering surface described at Handler.
func (f *Fake) steerRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(steerPrefix+"faults", methods{
		http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, toFaultsJSON(f.Faults()))
		},
		http.MethodPost: func(w http.ResponseWriter, r *http.Request) {
			var j faultsJSON
			if err := decodeBody(w, r, &j); err != nil {
				writeProblem(w, http.StatusBadRequest, err.Error())
				return
			}
			ft, err := j.faults()
			if err == nil {
				err = f.SetFaults(ft)
			}
			if err != nil {
				writeProblem(w, http.StatusBadRequest, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, toFaultsJSON(f.Faults()))
		},
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) {
			f.ClearFaults()
			w.WriteHeader(http.StatusNoContent)
		},
	})
	mux.Handle(steerPrefix+"tokens/expire", methods{
		http.MethodPost: func(w http.ResponseWriter, r *http.Request) {
			f.ExpireTokens()
			w.WriteHeader(http.StatusNoContent)
		},
	})
	mux.Handle(steerPrefix+"requests", methods{
		http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, f.Requests())
		},
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) {
			f.ResetRequests()
			w.WriteHeader(http.StatusNoContent)
		},
	})
	mux.Handle(steerPrefix+"tickets/{id}/state", methods{
		http.MethodPost: func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				State string `json:"state"`
			}
			if err := decodeBody(w, r, &body); err != nil {
				writeProblem(w, http.StatusBadRequest, err.Error())
				return
			}
			st, err := partner.ParseTicketState(body.State)
			if err != nil {
				writeProblem(w, http.StatusBadRequest, fmt.Sprintf("field %q: %v", "state", err))
				return
			}
			id := r.PathValue("id")
			if err := f.SetTicketState(id, st); err != nil {
				writeProblem(w, http.StatusNotFound, fmt.Sprintf("ticket %q not found", id))
				return
			}
			t, _ := f.Ticket(id)
			writeJSON(w, http.StatusOK, t)
		},
	})
	mux.HandleFunc("/", notFound)
	return mux
}
