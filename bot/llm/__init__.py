"""The LLM port: how the bot asks a language model, and the Anthropic adapter behind it.

Modules: port (the request, answer and fallback types and the `LanguageModel` protocol); schema (the JSON
Schema subset tool inputs and answers are checked against); claude (the adapter on the `anthropic` SDK);
reply (a Messages API reply, checked); wire (each HTTP attempt: deadline, retry-after, metrics); budget
(the daily token budget); build (Claude, or rule-based drafts when ANTHROPIC_API_KEY is unset).
"""

from bot.llm.build import RuleBased, language_model
from bot.llm.claude import ANSWER_TOOL, Claude
from bot.llm.port import (
    RULE_BASED,
    Answer,
    Fallback,
    FallbackReason,
    LanguageModel,
    Request,
    Tool,
    ToolCall,
    ToolError,
    Usage,
)

__all__ = [
    "ANSWER_TOOL",
    "RULE_BASED",
    "Answer",
    "Claude",
    "Fallback",
    "FallbackReason",
    "LanguageModel",
    "Request",
    "RuleBased",
    "Tool",
    "ToolCall",
    "ToolError",
    "Usage",
    "language_model",
]
