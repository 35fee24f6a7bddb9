from ponder.strategies.budget import Allowance, Budget, Usage, combine_parallel
from ponder.strategies.engine import Choice, Generation


def gen(prompt: int, *completions: int, requests: int = 1) -> Generation:
    return Generation(
        choices=tuple(Choice(f"c{i}", c) for i, c in enumerate(completions)),
        prompt_tokens=prompt,
        model="m",
        requests=requests,
    )


def test_one_call_counts_prompt_plus_completion_both_ways() -> None:
    budget = Budget()
    budget.record(gen(10, 5), role="answer", round=1, prompt="p")
    usage = budget.usage()
    assert usage.all_tokens == usage.sequential_tokens == 15
    assert (usage.prompt_tokens, usage.completion_tokens, usage.calls) == (10, 5, 1)


def test_batched_samples_are_parallel_and_prefill_is_billed_once() -> None:
    budget = Budget()
    budget.record(gen(10, 3, 7, 5), role="draft", round=1, prompt="p")
    usage = budget.usage()
    assert usage.all_tokens == 3 * 10 + 3 + 7 + 5  # every sample reads its prompt
    assert usage.sequential_tokens == 10 + 7  # the longest sample
    assert usage.prompt_tokens == 10  # one prefill
    assert usage.drafts == 3
    assert [r.index for r in budget.records] == [0, 1, 2]


def test_fanned_out_requests_bill_each_prefill() -> None:
    budget = Budget()
    budget.record(gen(10, 1, 1, requests=2), role="draft", round=1, prompt="p")
    assert budget.usage().prompt_tokens == 20
    assert budget.usage().calls == 2


def test_sequential_steps_add_up_and_parallel_block_shares_a_step() -> None:
    budget = Budget()
    budget.record(gen(10, 4, 8), role="draft", round=1, prompt="p")  # step 1: max 18
    with budget.parallel():
        budget.record(gen(20, 2), role="refine", round=2, prompt="q")  # 22
        budget.record(gen(20, 9), role="refine", round=2, prompt="q")  # 29
    budget.record(gen(5, 1), role="extract", round=2, prompt="r")  # step 3: 6
    usage = budget.usage()
    assert usage.sequential_tokens == 18 + 29 + 6
    assert usage.all_tokens == 14 + 18 + 22 + 29 + 6
    assert usage.rounds == 2
    assert [r.index for r in budget.records if r.role == "refine"] == [0, 1]
    assert [r.step for r in budget.records] == [1, 1, 2, 2, 3]


def test_remaining_tokens_under_the_cap() -> None:
    budget = Budget(max_all_tokens=100)
    budget.record(gen(10, 30), role="answer", round=1, prompt="p")
    assert budget.remaining() == 60
    assert Budget().remaining() is None


def test_parallel_runs_take_the_longest_critical_path() -> None:
    a = Usage(10, 5, 1, 1, 0, 15, 15)
    b = Usage(10, 9, 2, 3, 4, 40, 60)
    combined = combine_parallel([a, b])
    assert combined == Usage(20, 14, 3, 3, 4, 40, 75)


def test_runs_of_one_request_share_its_allowance() -> None:
    allowance = Allowance(100)
    first, second = Budget(max_all_tokens=100, allowance=allowance), Budget(100, allowance)
    first.record(gen(20, 30), role="draft", round=1, prompt="p")
    assert first.remaining() == 50
    second.record(gen(20, 20), role="draft", round=1, prompt="p")
    assert second.remaining() == first.remaining() == 10  # not 100 - 40 each
