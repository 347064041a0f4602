"""The model prices a fresh installation starts with (USD per million tokens).

Patterns use the providers' API ids and match the whole name, so dated snapshots and
aliases map to their family (`gpt-4o-2024-08-06` -> gpt-4o) while `gpt-4o` never prices
`gpt-4o-mini`. Columns: provider, display name, pattern, input, output, cached input.
"""

SEED_PRICES: list[tuple[str, str, str, str, str, str | None]] = [
    # OpenAI
    ("openai", "GPT-4o", r"gpt-4o(-\d{4}-\d{2}-\d{2})?", "2.50", "10.00", "1.25"),
    ("openai", "GPT-4o mini", r"gpt-4o-mini(-\d{4}-\d{2}-\d{2})?", "0.15", "0.60", "0.075"),
    ("openai", "ChatGPT-4o latest", r"chatgpt-4o-latest", "5.00", "15.00", None),
    ("openai", "GPT-4.1", r"gpt-4\.1(-\d{4}-\d{2}-\d{2})?", "2.00", "8.00", "0.50"),
    ("openai", "GPT-4.1 mini", r"gpt-4\.1-mini(-\d{4}-\d{2}-\d{2})?", "0.40", "1.60", "0.10"),
    ("openai", "GPT-4.1 nano", r"gpt-4\.1-nano(-\d{4}-\d{2}-\d{2})?", "0.10", "0.40", "0.025"),
    ("openai", "GPT-5", r"gpt-5(-\d{4}-\d{2}-\d{2}|-chat-latest)?", "1.25", "10.00", "0.125"),
    ("openai", "GPT-5 mini", r"gpt-5-mini(-\d{4}-\d{2}-\d{2})?", "0.25", "2.00", "0.025"),
    ("openai", "GPT-5 nano", r"gpt-5-nano(-\d{4}-\d{2}-\d{2})?", "0.05", "0.40", "0.005"),
    ("openai", "o1", r"o1(-\d{4}-\d{2}-\d{2}|-preview(-\d{4}-\d{2}-\d{2})?)?", "15.00", "60.00", "7.50"),
    ("openai", "o1-mini", r"o1-mini(-\d{4}-\d{2}-\d{2})?", "1.10", "4.40", "0.55"),
    ("openai", "o3", r"o3(-\d{4}-\d{2}-\d{2})?", "2.00", "8.00", "0.50"),
    ("openai", "o3-mini", r"o3-mini(-\d{4}-\d{2}-\d{2})?", "1.10", "4.40", "0.55"),
    ("openai", "o4-mini", r"o4-mini(-\d{4}-\d{2}-\d{2})?", "1.10", "4.40", "0.275"),
    ("openai", "GPT-4 Turbo", r"gpt-4-turbo(-\d{4}-\d{2}-\d{2}|-preview)?", "10.00", "30.00", None),
    ("openai", "GPT-3.5 Turbo", r"gpt-3\.5-turbo(-\d{4})?", "0.50", "1.50", None),
    # Anthropic (cached input = cache reads)
    ("anthropic", "Claude 3.5 Sonnet", r"claude-3-5-sonnet-(20241022|20240620|latest)", "3.00", "15.00", "0.30"),
    ("anthropic", "Claude 3.7 Sonnet", r"claude-3-7-sonnet-(20250219|latest)", "3.00", "15.00", "0.30"),
    ("anthropic", "Claude Sonnet 4", r"claude-sonnet-4-(20250514|0)", "3.00", "15.00", "0.30"),
    ("anthropic", "Claude Sonnet 4.5", r"claude-sonnet-4-5(-20250929)?", "3.00", "15.00", "0.30"),
    ("anthropic", "Claude 3.5 Haiku", r"claude-3-5-haiku-(20241022|latest)", "0.80", "4.00", "0.08"),
    ("anthropic", "Claude Haiku 4.5", r"claude-haiku-4-5(-20251001)?", "1.00", "5.00", "0.10"),
    ("anthropic", "Claude 3 Haiku", r"claude-3-haiku-20240307", "0.25", "1.25", "0.03"),
    ("anthropic", "Claude 3 Opus", r"claude-3-opus-(20240229|latest)", "15.00", "75.00", "1.50"),
    ("anthropic", "Claude Opus 4", r"claude-opus-4-(20250514|0)", "15.00", "75.00", "1.50"),
    ("anthropic", "Claude Opus 4.1", r"claude-opus-4-1(-20250805)?", "15.00", "75.00", "1.50"),
    ("anthropic", "Claude Opus 4.5", r"claude-opus-4-5(-20251101)?", "5.00", "25.00", "0.50"),
    # Google (prompts up to 128k / 200k tokens)
    ("gemini", "Gemini 1.5 Flash", r"gemini-1\.5-flash(-\d{3}|-latest)?", "0.075", "0.30", "0.01875"),
    ("gemini", "Gemini 1.5 Flash-8B", r"gemini-1\.5-flash-8b(-\d{3}|-latest)?", "0.0375", "0.15", "0.01"),
    ("gemini", "Gemini 1.5 Pro", r"gemini-1\.5-pro(-\d{3}|-latest)?", "1.25", "5.00", "0.3125"),
    ("gemini", "Gemini 2.0 Flash", r"gemini-2\.0-flash(-\d{3})?", "0.10", "0.40", "0.025"),
    ("gemini", "Gemini 2.0 Flash-Lite", r"gemini-2\.0-flash-lite(-\d{3})?", "0.075", "0.30", None),
    ("gemini", "Gemini 2.5 Pro", r"gemini-2\.5-pro", "1.25", "10.00", "0.31"),
    ("gemini", "Gemini 2.5 Flash", r"gemini-2\.5-flash", "0.30", "2.50", "0.075"),
    ("gemini", "Gemini 2.5 Flash-Lite", r"gemini-2\.5-flash-lite", "0.10", "0.40", "0.025"),
    # The simulator (demos, load tests): priced like the real model of its tier.
    ("sim", "Simulator, simple tier", r"sim/simple|simple", "0.075", "0.30", "0.01875"),
    ("sim", "Simulator, medium tier", r"sim/medium|medium", "0.15", "0.60", "0.075"),
    ("sim", "Simulator, complex tier", r"sim/complex|complex", "3.00", "15.00", "0.30"),
    ("sim", "Simulator, baseline", r"sim/baseline|baseline", "2.50", "10.00", "1.25"),
]


# Dated snapshots priced unlike their family: literal patterns with a higher priority, so they
# win over the family's pattern. Columns as above, then the priority. Seeded by migration 0006.
DATED_PRICES: list[tuple[str, str, str, str, str, str | None, int]] = [
    ("openai", "GPT-4o (2024-05-13)", r"gpt-4o-2024-05-13", "5.00", "15.00", None, 10),
]
