package httpapi

import (
	"net/http"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// The error types of OpenAI's error object that hedge uses.
const (
	typeInvalidRequest = "invalid_request_error"
	typeRateLimit      = "rate_limit_error"
	typePermission     = "permission_error"
	typeServer         = "server_error"
)

// apiError is OpenAI's error object; the reply is {"error": apiError}.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

type errorReply struct {
	Error apiError `json:"error"`
	// Hedge carries routing facts an error reply still has: queued, when
	// the escalation is stored and its answer will be in the cache.
	Hedge *errorFacts `json:"hedge,omitempty"`
}

type errorFacts struct {
	Queued bool `json:"queued"`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg, param string) {
	e := apiError{Message: msg, Type: typ, Code: code}
	if param != "" {
		e.Param = &param
	}
	writeErrorReply(w, status, errorReply{Error: e})
}

// writeRequestError writes the error reply of a refused request.
func writeRequestError(w http.ResponseWriter, e *chat.Error) {
	writeError(w, e.Status, typeInvalidRequest, e.Code, e.Msg, e.Param)
}

func writeErrorReply(w http.ResponseWriter, status int, r errorReply) {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, r)
}

// statusOf maps an agent error code to the HTTP status (chat.StatusOf) and
// OpenAI error type of its reply. The code itself is passed on as the
// error's code.
func statusOf(c agent.ErrorCode) (int, string) {
	status := chat.StatusOf(c)
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return status, typeInvalidRequest
	case http.StatusTooManyRequests:
		return status, typeRateLimit
	case http.StatusForbidden:
		return status, typePermission
	}
	return status, typeServer
}

// writeAgentError writes the error reply of an answer whose Error is set.
func writeAgentError(w http.ResponseWriter, a agent.Answer) {
	status, typ := statusOf(a.Error.Code)
	r := errorReply{Error: apiError{Message: a.Error.Message, Type: typ, Code: string(a.Error.Code)}}
	if a.Queued {
		r.Hedge = &errorFacts{Queued: true}
	}
	writeErrorReply(w, status, r)
}
