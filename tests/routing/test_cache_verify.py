"""The semantic cache's verification step, on hand-written prompts that appear in no data set.

No embedding model here: these are the rules that stop near-misses a cosine score cannot tell apart.
"""

from __future__ import annotations

from typing import Any

import pytest

from routing.cache_verify import (
    DEFAULT_SIMILARITY_THRESHOLD,
    VerifyResult,
    conversation_text,
    verify_semantic_match,
)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def check(query: str, candidate: str) -> VerifyResult:
    return verify_semantic_match(user(query), user(candidate))


# --- Matches --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        ("How do I rotate the logs of my Nginx server every week?", "How can I make Nginx rotate its logs weekly?"),
        ("What does the retry_backoff option of Celery do?", "Explain what Celery's retry_backoff option does."),
        ("Give me three tips for writing clearer emails.", "Share 3 tips for writing emails more clearly."),
        ("Summarise the plot of Moby Dick in two sentences.", "Summarize Moby Dick's plot in 2 sentences."),
        ("How do I turn on dark mode in the settings page?", "How can I enable dark mode from the settings page?"),
    ],
)
def test_a_paraphrase_is_a_match(query: str, candidate: str) -> None:
    result = check(query, candidate)

    assert result.ok, result.reason


def test_the_same_prompt_with_other_spacing_and_case_is_a_match() -> None:
    assert check("What  is a Bloom filter?", "what is a Bloom filter?\n").ok


def test_text_parts_count_like_a_plain_string() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "Name two uses of a Bloom filter."}]}]

    assert verify_semantic_match(parts, user("Name two uses of a Bloom filter.")).ok


def test_a_paraphrase_after_the_same_earlier_turns_is_a_match() -> None:
    history = [
        {"role": "system", "content": "You are a cooking assistant."},
        {"role": "user", "content": "I have eggs, flour and milk."},
        {"role": "assistant", "content": "You could make pancakes or crepes."},
    ]

    result = verify_semantic_match(
        [*history, *user("How long should the batter rest?")],
        [*history, *user("For how long should I let the batter rest?")],
    )

    assert result.ok, result.reason


# --- Numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        (
            "A train leaves at 14:05 and travels 180 km. When does it arrive?",
            "A train leaves at 14:05 and travels 190 km. When does it arrive?",
        ),
        ("Split a bill of 84.50 between four friends.", "Split a bill of 84.50 between five friends."),
        ("Split a bill of 84.50 between four friends.", "Split a bill of 84.05 between four friends."),
        ("What is 7 minus 12?", "What is 7 minus -12?"),
        ("Raise the price by 15% next month.", "Raise the price by 25% next month."),
        ("Convert 3 miles to kilometres.", "Convert 3 kilometres to miles."),
        ("Sam has 4 cats and 9 dogs. How many legs?", "Sam has 9 cats and 4 dogs. How many legs?"),
        ("Print the first twenty-one primes.", "Print the first twenty-two primes."),
        ("Is version 3.11.2 affected by the bug?", "Is version 3.11.4 affected by the bug?"),
        ("Is a 1,500 euro budget enough for the trip?", "Is a 15,000 euro budget enough for the trip?"),
        ("Pay $20 for the ticket.", "Pay 20 euros for the ticket."),
    ],
)
def test_a_changed_number_is_not_a_match(query: str, candidate: str) -> None:
    result = check(query, candidate)

    assert not result.ok
    assert "number" in result.reason or "unit" in result.reason


def test_a_number_written_out_matches_its_digits() -> None:
    assert check("Plan a trip of twelve days in Portugal.", "Plan a 12 day trip in Portugal.").ok


# --- Names, quoted strings, code ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        ("What is the population of Lisbon?", "What is the population of Porto?"),
        (
            "Kubernetes is the orchestrator we use; how do I scale it?",
            "Nomad is the orchestrator we use; how do I scale it?",
        ),
        ("Why does my `fetch_orders()` call time out?", "Why does my `fetch_invoices()` call time out?"),
        ('Translate "good morning" into Italian.', 'Translate "good night" into Italian.'),
        ("Is https://status.example.org down?", "Is https://status.example.net down?"),
        ("Send the report to ana@example.com.", "Send the report to rui@example.com."),
        ("Why is config.yaml ignored by the loader?", "Why is config.toml ignored by the loader?"),
    ],
)
def test_a_changed_name_quote_or_identifier_is_not_a_match(query: str, candidate: str) -> None:
    assert not check(query, candidate).ok


def test_a_swapped_name_that_opens_the_sentence_is_not_a_match() -> None:
    assert not check("Flask is a framework for small web apps.", "Bottle is a framework for small web apps.").ok


# --- Polarity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        ("Should I salt the water before boiling pasta?", "Should I not salt the water before boiling pasta?"),
        ("Which fruits can dogs eat?", "Which fruits can't dogs eat?"),
        ("Write a sentence with the word 'harbor'.", "Write a sentence without the word 'harbor'."),
        ("List cities that have a metro.", "List cities that have never had a metro."),
    ],
)
def test_a_negation_is_not_a_match(query: str, candidate: str) -> None:
    result = check(query, candidate)

    assert not result.ok
    assert "negation" in result.reason


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        ("How do I enable two-factor login on my router?", "How do I disable two-factor login on my router?"),
        ("How do I enable spell check in my editor?", "How do I turn off spell check in my editor?"),
        ("Add a column for the shipping date.", "Remove a column for the shipping date."),
        ("Allow uploads larger than the quota.", "Deny uploads larger than the quota."),
        ("Should I stretch before running?", "Should I stretch after running?"),
        ("Find the maximum of the sensor readings.", "Find the minimum of the sensor readings."),
        ("Encrypt the backup of the garden photos.", "Decrypt the backup of the garden photos."),
        ("Sort the invoices in ascending order.", "Sort the invoices in descending order."),
        ("Is the statement about tides true?", "Is the statement about tides false?"),
        ("How do I upload a playlist to my phone?", "How do I download a playlist to my phone?"),
        ("Increase the volume of the alarm.", "Decrease the volume of the alarm."),
    ],
)
def test_an_antonym_is_not_a_match(query: str, candidate: str) -> None:
    result = check(query, candidate)

    assert not result.ok
    assert "opposite" in result.reason


# --- Conversation context ---------------------------------------------------------------------------


def test_a_different_system_prompt_is_not_a_match() -> None:
    question = user("Describe the water cycle.")

    result = verify_semantic_match(
        [{"role": "system", "content": "Answer for a five-year-old."}, *question],
        [{"role": "system", "content": "Answer for a hydrology professor."}, *question],
    )

    assert not result.ok
    assert "system prompt" in result.reason


def test_a_missing_system_prompt_is_not_a_match() -> None:
    question = user("Describe the water cycle.")

    result = verify_semantic_match(question, [{"role": "system", "content": "Answer in Welsh."}, *question])

    assert not result.ok
    assert "system prompt" in result.reason


def test_a_system_prompt_differing_only_in_spacing_and_case_is_a_match() -> None:
    question = user("Describe the water cycle.")

    result = verify_semantic_match(
        [{"role": "system", "content": "Answer  briefly."}, *question],
        [{"role": "system", "content": "answer briefly.\n"}, *question],
    )

    assert result.ok, result.reason


def test_a_conversation_where_only_an_earlier_turn_differs_is_not_a_match() -> None:
    follow_up = [{"role": "assistant", "content": "Noted."}, *user("What should I pack?")]

    result = verify_semantic_match(
        [*user("I am going hiking in Iceland in March."), *follow_up],
        [*user("I am going hiking in Morocco in March."), *follow_up],
    )

    assert not result.ok
    assert "turn 1" in result.reason


def test_a_conversation_where_only_an_earlier_answer_differs_is_not_a_match() -> None:
    result = verify_semantic_match(
        [*user("Pick a colour."), {"role": "assistant", "content": "Blue."}, *user("Name a fruit of that colour.")],
        [*user("Pick a colour."), {"role": "assistant", "content": "Red."}, *user("Name a fruit of that colour.")],
    )

    assert not result.ok
    assert "turn 2" in result.reason


def test_a_conversation_with_an_extra_turn_is_not_a_match() -> None:
    longer = [*user("Hi."), {"role": "assistant", "content": "Hello!"}, *user("Tell me a joke.")]

    assert not verify_semantic_match(user("Tell me a joke."), longer).ok


def test_different_images_are_not_a_match() -> None:
    def with_image(url: str) -> list[dict[str, Any]]:
        parts = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": url}}]
        return [{"role": "user", "content": parts}]

    assert not verify_semantic_match(
        with_image("https://img.example/a.png"), with_image("https://img.example/b.png")
    ).ok


# --- Multiple choice ----------------------------------------------------------------------------------


def test_the_same_question_with_other_options_is_not_a_match() -> None:
    stem = "Which gas makes up most of the air on Mars?"

    result = check(
        f"{stem}\nA. Oxygen\nB. Nitrogen\nC. Carbon dioxide\nD. Argon\nAnswer:",
        f"{stem}\nA. Nitrogen\nB. Oxygen\nC. Carbon dioxide\nD. Argon\nAnswer:",
    )

    assert not result.ok
    assert "options" in result.reason


def test_a_multiple_choice_question_against_its_bare_stem_is_not_a_match() -> None:
    stem = "Which gas makes up most of the air on Mars?"

    assert not check(f"{stem}\nA. Oxygen\nB. Nitrogen\nC. Carbon dioxide\nD. Argon\nAnswer:", stem).ok


# --- Canonical text and speed ----------------------------------------------------------------------------


def test_the_canonical_text_marks_every_role_including_the_system_prompt() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello\n  there"}]},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Bye."},
    ]

    assert conversation_text(messages) == "system: Be brief.\nuser: Hello there\nassistant: Hi.\nuser: Bye."


def test_the_default_threshold_is_a_similarity() -> None:
    assert 0.5 < DEFAULT_SIMILARITY_THRESHOLD < 1.0


# --- Generic guards for near-misses no list names -----------------------------------------------------


def test_one_word_swapped_for_an_unlisted_opposite_is_not_a_match() -> None:
    result = check("Should I water succulents in the morning?", "Should I water succulents in the evening?")

    assert not result.ok
    assert "one word swapped" in result.reason


def test_one_word_swapped_for_a_common_synonym_is_a_match() -> None:
    assert check("Which method removes stale cache keys?", "Which technique removes stale cache keys?").ok


def test_the_same_words_in_another_order_are_not_a_match() -> None:
    result = check(
        "If the tortoise is twice as old as the parrot, how old is the parrot?",
        "If the parrot is twice as old as the tortoise, how old is the tortoise?",
    )

    assert not result.ok


def test_a_different_formula_is_not_a_match() -> None:
    assert not check("Is (P ∨ Q) ⊃ R valid?", "Is (P · Q) ⊃ R valid?").ok


def test_a_different_variable_is_not_a_match() -> None:
    assert not check("Prove that the map f is injective.", "Prove that the map g is injective.").ok


def test_a_long_shared_passage_with_another_question_is_not_a_match() -> None:
    passage = (
        "The lighthouse keeper logged the weather every hour. On stormy nights he lit a second lamp, "
        "and in the mornings he walked the shore to count the boats that had sheltered in the cove, "
        "writing their names and home ports in a green ledger that he kept under the stairs. "
    )

    result = check(
        passage + "What did the keeper do on stormy nights?",
        passage + "Where did the keeper keep his green ledger?",
    )

    assert not result.ok
    assert "passage" in result.reason


def test_the_same_options_under_another_question_are_not_a_match() -> None:
    options = "\nA. Granite\nB. Basalt\nC. Marble\nD. Shale\nAnswer:"

    result = check("Which rock is metamorphic?" + options, "Which rock forms from cooled lava?" + options)

    assert not result.ok
    assert "question differs" in result.reason
