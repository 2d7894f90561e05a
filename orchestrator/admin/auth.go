package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/obdorch/obdorch/orchestrator/controlplane"
)

// cookieName holds the dashboard's token. The cookie is HttpOnly (page
// scripts cannot read it) and SameSite=Strict (other sites cannot send it).
const cookieName = "obdorch_token"

type principalKey struct{}

// principalOf returns the caller that the role check admitted.
func principalOf(ctx context.Context) controlplane.Principal {
	p, _ := ctx.Value(principalKey{}).(controlplane.Principal)
	return p
}

// authenticate finds the caller of r: the bearer token of the
// Authorization header, else the dashboard's cookie. Without tokens every
// caller is admin, named by its address as on the control plane.
func (s *Server) authenticate(r *http.Request) (controlplane.Principal, int, string) {
	if s.opts.Tokens == nil {
		return controlplane.Principal{Name: "admin-http@" + r.RemoteAddr, Role: controlplane.RoleAdmin}, 0, ""
	}
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(rest) == "" {
			return controlplane.Principal{}, http.StatusUnauthorized, "malformed Authorization header: want \"Bearer <token>\""
		}
		token = strings.TrimSpace(rest)
	} else if c, err := r.Cookie(cookieName); err == nil {
		token = c.Value
	}
	if token == "" {
		return controlplane.Principal{}, http.StatusUnauthorized, "a bearer token is required"
	}
	p, ok := s.opts.Tokens.Lookup(token)
	if !ok {
		return controlplane.Principal{}, http.StatusUnauthorized, "unknown bearer token"
	}
	return p, 0, ""
}

// need admits callers whose role is at least role. Requests that change
// something (not GET or HEAD) must also come from this origin with a JSON
// body, so another site cannot make a browser send them.
func (s *Server) need(role controlplane.Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, code, msg := s.authenticate(r)
		if code != 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="obdorch"`)
			writeError(w, code, msg)
			return
		}
		if p.Role < role {
			writeError(w, http.StatusForbidden, "needs role "+role.String()+"; caller \""+p.Name+"\" has role "+p.Role.String())
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg := sameOriginJSON(r); msg != "" {
				writeError(w, http.StatusForbidden, msg)
				return
			}
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// sameOriginJSON checks a state-changing request: JSON content (a plain
// cross-site form cannot send it without a CORS preflight, which this
// server never answers) and, when the browser names it, an Origin of this
// host.
func sameOriginJSON(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "Content-Type must be application/json"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return "cross-origin request refused"
		}
	}
	return ""
}

// login checks a token and stores it in the dashboard's cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if msg := sameOriginJSON(r); msg != "" {
		writeError(w, http.StatusForbidden, msg)
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"token\": \"...\"}")
		return
	}
	if s.opts.Tokens == nil {
		writeJSON(w, http.StatusOK, meView{Name: "admin-http@" + r.RemoteAddr, Role: controlplane.RoleAdmin.String()})
		return
	}
	p, ok := s.opts.Tokens.Lookup(strings.TrimSpace(body.Token))
	if !ok {
		writeError(w, http.StatusUnauthorized, "token: unknown")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: strings.TrimSpace(body.Token), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.TLS != nil,
	})
	writeJSON(w, http.StatusOK, meView{Name: p.Name, Role: p.Role.String(), Auth: true})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.TLS != nil,
	})
	w.WriteHeader(http.StatusNoContent)
}

type meView struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Auth is false when the server runs without tokens.
	Auth bool `json:"auth"`
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r.Context())
	writeJSON(w, http.StatusOK, meView{Name: p.Name, Role: p.Role.String(), Auth: s.opts.Tokens != nil})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
