package agent

import (
	"context"
	"fmt"
	"time"
)

// Turn is one exchange of a conversation: what the user asked and what
// hedge answered, whichever tier answered it.
type Turn struct {
	User   string `json:"user"`
	Answer string `json:"answer"`
	Tier   Tier   `json:"tier,omitempty"`
	Intent string `json:"intent,omitempty"`
	// CloudUser and CloudAnswer are what the cloud saw of the turn, with
	// placeholders, when the cloud answered it.
	CloudUser   string    `json:"cloud_user,omitempty"`
	CloudAnswer string    `json:"cloud_answer,omitempty"`
	At          time.Time `json:"at"`
}

// Memory keeps the turns of conversations, each scoped to its caller: the
// same id of another caller names another conversation. Implementations
// are safe for concurrent use.
type Memory interface {
	// History returns the turns of caller's conversation id, oldest first;
	// an unknown or expired conversation has none, which is not an error.
	History(ctx context.Context, caller, id string) ([]Turn, error)
	// Append adds t to caller's conversation id, dropping the oldest turns
	// beyond the memory's bounds.
	Append(ctx context.Context, caller, id string, t Turn) error
	// Delete forgets caller's conversation id and reports whether it
	// existed.
	Delete(ctx context.Context, caller, id string) (bool, error)
}

// The operations a request may name besides asking (Query.Op). Each acts
// on the caller's own conversation Query.Conversation.
const (
	OpAsk              = ""
	OpConversationShow = "conversation.show"
	OpConversationRm   = "conversation.rm"
)

// operate runs a request's Op other than asking.
func (a *Agent) operate(ctx context.Context, q Query) Answer {
	if q.Conversation == "" {
		return ErrorAnswer(q.ID, Errorf(CodeBadRequest, "op %s needs a conversation", q.Op))
	}
	if a.o.Memory == nil {
		return ErrorAnswer(q.ID, Errorf(CodeBadRequest, "conversation memory is off (conversation.enabled)"))
	}
	switch q.Op {
	case OpConversationShow:
		turns, err := a.o.Memory.History(ctx, q.Caller, q.Conversation)
		if err != nil {
			return ErrorAnswer(q.ID, Errorf(CodeInternal, "read conversation: %v", err))
		}
		return Answer{ID: q.ID, Turns: turns, Answer: fmt.Sprintf("%d turns", len(turns))}
	case OpConversationRm:
		had, err := a.o.Memory.Delete(ctx, q.Caller, q.Conversation)
		if err != nil {
			return ErrorAnswer(q.ID, Errorf(CodeInternal, "delete conversation: %v", err))
		}
		if !had {
			return Answer{ID: q.ID, Answer: "no such conversation"}
		}
		return Answer{ID: q.ID, Answer: "deleted"}
	}
	return ErrorAnswer(q.ID, Errorf(CodeBadRequest, "op %q is not one of %s, %s", q.Op, OpConversationShow, OpConversationRm))
}

// MaxConversationBytes bounds a conversation id.
const MaxConversationBytes = 128
