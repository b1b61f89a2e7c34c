"""The text query language (parse_text) and how weighted term vectors become one unit query
vector (combine). Both back every search: CLI, API and generate-on-miss."""

import numpy as np
import pytest

from mmsearch.search.query import MAX_COMBINED_WEIGHT, MAX_WEIGHT, QueryError, combine, parse_text


def _terms(query: str) -> list[tuple[float, str]]:
    return [(t.weight, t.text) for t in parse_text(query)]


# -- parse_text -------------------------------------------------------------------------------


def test_plain_text_is_one_term_of_weight_one():
    assert _terms("red circle") == [(1.0, "red circle")]
    terms = parse_text("red circle")
    assert terms[0].image is None and terms[0].media_id is None and terms[0].vector is None


def test_surrounding_whitespace_is_dropped():
    assert _terms("   red circle \n") == [(1.0, "red circle")]


def test_quoted_terms_with_a_negative_term():
    assert _terms('"red circle" - "white background"') == [(1.0, "red circle"), (-1.0, "white background")]


def test_the_documented_example_with_weights():
    assert _terms('2*"red" + 0.5*"large square" - "white background"') == [
        (2.0, "red"),
        (0.5, "large square"),
        (-1.0, "white background"),
    ]
    assert _terms('"red circle" - "white background" + 0.5*"blue"') == [
        (1.0, "red circle"),
        (-1.0, "white background"),
        (0.5, "blue"),
    ]


def test_unquoted_terms_are_separated_by_standalone_operators():
    assert _terms("red + blue - green") == [(1.0, "red"), (1.0, "blue"), (-1.0, "green")]
    assert _terms("red - 3 circles") == [(1.0, "red"), (-1.0, "3 circles")]


def test_a_hyphen_inside_words_is_not_an_operator():
    assert _terms("top-left square") == [(1.0, "top-left square")]
    assert _terms('"top-left" - "bottom-right"') == [(1.0, "top-left"), (-1.0, "bottom-right")]


def test_a_sign_stuck_to_a_word_or_number_is_text():
    assert _terms("red -blue") == [(1.0, "red -blue")]
    assert _terms("-5 degrees") == [(1.0, "-5 degrees")]
    assert _terms("a+b") == [(1.0, "a+b")]


def test_operators_inside_quotes_are_text():
    assert _terms('"a - b" + "c + d"') == [(1.0, "a - b"), (1.0, "c + d")]


def test_a_leading_minus_makes_the_first_term_negative():
    assert _terms("- red") == [(-1.0, "red")]
    assert _terms('-"red"') == [(-1.0, "red")]


def test_weights_integer_decimal_leading_dot_and_spaces_around_the_star():
    assert _terms("2*red") == [(2.0, "red")]
    assert _terms(".5*red") == [(0.5, "red")]
    assert _terms("2 * red") == [(2.0, "red")]
    assert _terms('2.5*"x"') == [(2.5, "x")]


def test_a_weighted_negative_term_multiplies_sign_and_weight():
    assert _terms("a - 0.5*b") == [(1.0, "a"), (-0.5, "b")]
    assert _terms('3*"x" - 2*"y"') == [(3.0, "x"), (-2.0, "y")]
    assert _terms("-0.5*b") == [(-0.5, "b")]


def test_a_weight_must_come_first_in_the_term():
    assert _terms("red 2*blue") == [(1.0, "red 2*blue")]


def test_two_minuses_cancel():
    assert _terms("a - - b") == [(1.0, "a"), (1.0, "b")]


def test_a_sign_applies_to_the_next_term_only():
    assert _terms("- a + b") == [(-1.0, "a"), (1.0, "b")]
    assert _terms('"a" - "b" "c"') == [(1.0, "a"), (-1.0, "b"), (1.0, "c")]


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_refused(query):
    with pytest.raises(QueryError, match="empty query"):
        parse_text(query)


@pytest.mark.parametrize("query", ["red -", "red +", "+", "-"])
def test_a_dangling_operator_is_refused(query):
    with pytest.raises(QueryError, match="dangling"):
        parse_text(query)


@pytest.mark.parametrize("query", ['"red', 'red - "blue'])
def test_an_unclosed_quote_is_refused(query):
    with pytest.raises(QueryError, match="unclosed quote"):
        parse_text(query)


@pytest.mark.parametrize("query", ['""', 'red - ""', '"   "', "2*", "red + 2*"])
def test_an_empty_term_is_refused(query):
    with pytest.raises(QueryError, match="empty term"):
        parse_text(query)


def test_weights_up_to_the_api_limit_are_kept():
    assert MAX_WEIGHT == 100  # as a weight of the HTTP API (schemas.Weight)
    assert _terms('100*"red" - 100.0*"blue" + 0*"green"') == [(100.0, "red"), (-100.0, "blue"), (0.0, "green")]


@pytest.mark.parametrize(
    "query, weight",
    [
        ('99999999999999999999999*"red"', "99999999999999999999999"),
        ("100.5*red", "100.5"),
        ('"blue" - 1000*"red"', "1000"),
        ("1" + "0" * 400 + "*red", "1" + "0" * 400),  # float() of it is inf
    ],
)
def test_a_weight_out_of_range_is_refused(query, weight):
    with pytest.raises(QueryError) as e:
        parse_text(query)
    assert str(e.value) == f"weight {weight} is out of range: a term's weight is at most {MAX_WEIGHT:g}"


def test_query_errors_are_value_errors():
    # The API maps QueryError to 400 and callers may catch ValueError.
    with pytest.raises(ValueError):
        parse_text("")


# -- combine ----------------------------------------------------------------------------------


E = np.eye(4, dtype=np.float32)


def test_combine_one_unit_vector_gives_it_back():
    q = combine([E[1]], [1.0])
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, E[1], atol=1e-7)


def test_combine_renormalises_to_a_unit_vector():
    q = combine([E[0], E[1]], [1.0, 1.0])
    np.testing.assert_allclose(q, [2**-0.5, 2**-0.5, 0.0, 0.0], atol=1e-6)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-6)


def test_combine_applies_weights_before_normalising():
    q = combine([E[0], E[1]], [3.0, 4.0])
    np.testing.assert_allclose(q, [0.6, 0.8, 0.0, 0.0], atol=1e-6)


def test_combine_a_negative_weight_subtracts():
    q = combine([E[0], E[1]], [1.0, -1.0])
    np.testing.assert_allclose(q, [2**-0.5, -(2**-0.5), 0.0, 0.0], atol=1e-6)


def test_combine_scaling_all_weights_does_not_change_the_query():
    vecs = [np.array([0.6, 0.8, 0, 0], np.float32), E[2], E[3]]
    np.testing.assert_allclose(combine(vecs, [1.0, 0.5, -0.25]), combine(vecs, [4.0, 2.0, -1.0]), atol=1e-6)


def test_combine_a_single_negative_term_points_away():
    np.testing.assert_allclose(combine([E[2]], [-2.0]), -E[2], atol=1e-7)


def test_combine_terms_that_cancel_out_are_refused():
    with pytest.raises(QueryError, match="cancel"):
        combine([E[0], E[0]], [1.0, -1.0])
    with pytest.raises(QueryError, match="cancel"):
        combine([E[0]], [0.0])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 on the way
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_combine_non_finite_values_are_refused(bad):
    v = E[0].copy()
    v[3] = bad
    with pytest.raises(QueryError, match="non-finite"):
        combine([v, E[1]], [1.0, 1.0])
    with pytest.raises(QueryError, match="non-finite"):
        combine([E[0]], [bad])


def test_combine_keeps_its_direction_for_weights_up_to_the_limit():
    # float32 sums of such weights overflowed the norm: q / inf gave a zero query, every score 0.0
    q = combine([E[0], E[1]], [MAX_COMBINED_WEIGHT, MAX_COMBINED_WEIGHT / 2])
    np.testing.assert_allclose(q, [2 / 5**0.5, 1 / 5**0.5, 0.0, 0.0], atol=1e-6)
    assert q.dtype == np.float32


@pytest.mark.parametrize("weight", [1e23, -1e7, MAX_COMBINED_WEIGHT * 1.01])
def test_combine_refuses_a_weight_out_of_range(weight):
    with pytest.raises(QueryError) as e:
        combine([E[0], E[1]], [1.0, weight])
    assert str(e.value) == f"weight {weight:g} is out of range: at most {MAX_COMBINED_WEIGHT:g} in magnitude"


def test_combine_terms_that_cancel_to_rounding_noise_are_refused():
    # Large opposite weights leave a float32 rounding residue that is no direction at all.
    v = np.array([0.6, 0.8, 0.0, 0.0], np.float32)
    w = np.array([0.6000001, 0.7999999, 0.0, 0.0], np.float32)
    with pytest.raises(QueryError, match="cancel"):
        combine([v, w], [1000.0, -1000.0])
    np.testing.assert_allclose(
        combine([v, E[2]], [1000.0, -1.0]), v * 1000 / np.sqrt(1000**2 + 1) - E[2] / np.sqrt(1000**2 + 1), atol=1e-6
    )
