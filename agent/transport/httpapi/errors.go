package httpapi

import (
	"net/http"

	"github.com/hedge-edge/hedge/agent"
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
}

func writeError(w http.ResponseWriter, status int, typ, code, msg, param string) {
	e := apiError{Message: msg, Type: typ, Code: code}
	if param != "" {
		e.Param = &param
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorReply{Error: e})
}

// statusOf maps an agent error code to the HTTP status and OpenAI error type
// of its reply. The code itself is passed on as the error's code.
func statusOf(c agent.ErrorCode) (int, string) {
	switch c {
	case agent.CodeBadRequest:
		return http.StatusBadRequest, typeInvalidRequest
	case agent.CodeTooLarge:
		return http.StatusRequestEntityTooLarge, typeInvalidRequest
	case agent.CodeBusy:
		return http.StatusTooManyRequests, typeRateLimit
	case agent.CodeRefused:
		return http.StatusForbidden, typePermission
	case agent.CodeNoTier, agent.CodeShuttingDown:
		return http.StatusServiceUnavailable, typeServer
	case agent.CodeTimeout:
		return http.StatusGatewayTimeout, typeServer
	case agent.CodeCloudConfig:
		// The cloud behind hedge refused the request: a bad gateway, and
		// one a retry does not mend (no Retry-After).
		return http.StatusBadGateway, typeServer
	}
	return http.StatusInternalServerError, typeServer
}

func writeAgentError(w http.ResponseWriter, e *agent.Error) {
	status, typ := statusOf(e.Code)
	writeError(w, status, typ, string(e.Code), e.Message, "")
}
