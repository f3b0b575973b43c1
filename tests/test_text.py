from __future__ import annotations

import pytest
from bidi import get_display
from hypothesis import given, settings
from hypothesis import strategies as st

from ogshot.fonts import FontSet
from ogshot.samples import TITLES
from ogshot.text import ELLIPSIS, Fitted, clusters, fit, normalise

BOX = {"width": 1040, "height": 300, "max_size": 80, "min_size": 40, "max_lines": 3}

SCRIPTS = dict(TITLES) | {
    "url": "https://example.com/a/very/long/path/that/goes/on/and/on/forever/index.html?q=1",
    "long-2000": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40)[:2000],
    "word-300": "x" * 300,
    "zalgo": "Z̷̛̮a̴͙l̵̰g̸̱o̷̗ " * 40,
    "flags": "🇫🇷🇯🇵🇧🇷🇺🇦🇰🇷🇩🇪🇮🇹🇪🇸🇺🇸🇨🇦🇲🇽🇦🇷" * 4,
}


def run_fit(fonts: FontSet, text: str, **over: int) -> Fitted:
    spec = BOX | over
    return fit(text, fonts=fonts, weight="bold", line_height=1.12, **spec)


def visible(fitted: Fitted) -> str:
    return " ".join(line.text for line in fitted.lines)


@pytest.mark.parametrize("label", sorted(SCRIPTS))
def test_every_script_fits_its_box_with_real_glyphs(fonts: FontSet, label: str) -> None:
    text = SCRIPTS[label]
    fitted = run_fit(fonts, text)
    assert 1 <= len(fitted.lines) <= BOX["max_lines"]
    assert BOX["min_size"] <= fitted.size <= BOX["max_size"]
    assert fitted.height <= BOX["height"]
    by_name = {face.name: face for face in fonts.faces}
    for line in fitted.lines:
        assert line.width <= BOX["width"] + 1, (label, line.text)
        for run in line.runs:
            for cluster in clusters(run.text):
                base = cluster[0]
                if base.isspace() or not fonts.has_glyph(base):
                    continue
                # No .notdef: the run's font has the cluster's base character.
                assert ord(base) in by_name[run.font].coverage, (label, cluster, run.font)


def test_no_glyph_of_the_samples_is_missing_from_every_font(fonts: FontSet) -> None:
    for label, title in TITLES:
        for ch in title:
            if ch.isspace() or ch in "\u200d\ufe0f":
                continue
            assert fonts.has_glyph(ch), (label, ch)


@pytest.mark.parametrize("label", sorted(SCRIPTS))
def test_grapheme_clusters_are_never_split(fonts: FontSet, label: str) -> None:
    text = SCRIPTS[label]
    fitted = run_fit(fonts, text, width=300)
    whole = set(clusters(text)) | {ELLIPSIS, " "}
    for line in fitted.lines:
        for cluster in clusters(line.text):
            assert cluster in whole, (label, cluster)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｶﾞｷﾟ", ("ｶﾞ", "ｷﾟ")),  # halfwidth voiced marks extend their base (UAX #29 GB9)
        ("ﾃﾞｰﾀ", ("ﾃﾞ", "ｰ", "ﾀ")),
        ("กำ", ("กำ",)),  # SARA AM is a spacing mark
    ],
)
def test_halfwidth_voiced_marks_stay_with_their_base(text: str, expected: tuple[str, ...]) -> None:
    assert clusters(text) == expected


def test_a_line_of_halfwidth_katakana_never_starts_with_a_voiced_mark(fonts: FontSet) -> None:
    fitted = run_fit(fonts, "ﾃﾞｰﾀﾍﾞｰｽｶﾞｲﾄﾞ" * 6, width=260, max_lines=6)
    assert len(fitted.lines) >= 2
    assert all(line.text[0] not in "ﾞﾟ" for line in fitted.lines)


def test_cjk_breaks_between_characters(fonts: FontSet) -> None:
    text = "为社交网络快速生成预览卡片支持所有文字为社交网络快速生成预览卡片"
    fitted = run_fit(fonts, text, width=500, max_lines=6)
    assert len(fitted.lines) >= 2
    assert not fitted.truncated
    assert "".join(line.text for line in fitted.lines) == text


def test_latin_breaks_only_between_words(fonts: FontSet) -> None:
    text = "Typography caching and captures explained for people who share pages everywhere"
    fitted = run_fit(fonts, text, width=500, max_lines=6)
    assert not fitted.truncated
    words = set(text.split())
    assert len(fitted.lines) >= 2
    for line in fitted.lines:
        assert all(word in words for word in line.text.split()), line.text


def test_a_long_url_breaks_rather_than_overflows(fonts: FontSet) -> None:
    fitted = run_fit(fonts, SCRIPTS["url"], width=400)
    assert len(fitted.lines) == 3
    assert all(line.width <= 400 + 1 for line in fitted.lines)


def test_long_title_is_cut_with_an_ellipsis_at_the_minimum_size(fonts: FontSet) -> None:
    fitted = run_fit(fonts, SCRIPTS["long-2000"])
    assert fitted.truncated
    assert fitted.size == BOX["min_size"]
    assert fitted.lines[-1].text.endswith(ELLIPSIS)


def test_short_title_takes_the_maximum_size(fonts: FontSet) -> None:
    fitted = run_fit(fonts, "Hello")
    assert fitted.size == BOX["max_size"] and not fitted.truncated


def test_shrinks_before_cutting(fonts: FontSet) -> None:
    text = "A title long enough that it must shrink a little to fit in three lines of this box"
    fitted = run_fit(fonts, text, width=700)
    assert BOX["min_size"] < fitted.size < BOX["max_size"]
    assert not fitted.truncated
    assert visible(fitted) == text


@pytest.mark.parametrize("text", ["", "   ", "\t\n "])
def test_whitespace_only_sets_nothing(fonts: FontSet, text: str) -> None:
    assert run_fit(fonts, text).lines == ()


@pytest.mark.parametrize(
    "text",
    [
        "שלום עולם hello world",
        "مرحبا بالعالم 2024 كيف حالك",
        "Read עברית inside English",
        "دليل Python الجديد للمطورين",
    ],
)
def test_display_order_matches_the_bidi_algorithm(fonts: FontSet, text: str) -> None:
    fitted = run_fit(fonts, text, width=1040, max_size=40)
    assert len(fitted.lines) == 1
    line = fitted.lines[0]
    shown = "".join(run.text[::-1] if run.rtl else run.text for run in line.runs)
    assert shown == get_display(line.text)


def test_rtl_paragraph_is_flagged(fonts: FontSet) -> None:
    assert run_fit(fonts, "שלום עולם").rtl
    assert not run_fit(fonts, "Hello שלום").rtl


def test_arabic_is_one_joined_run_per_word_group(fonts: FontSet) -> None:
    fitted = run_fit(fonts, "مرحبا بالعالم", max_size=40)
    runs = fitted.lines[0].runs
    assert [r.font for r in runs] == ["NotoSansArabic"]
    assert runs[0].rtl


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_any_text_fits_or_is_cut(text: str) -> None:
    fonts = FontSet.default()
    fitted = run_fit(fonts, text, width=600, height=200, max_size=60, min_size=24)
    assert len(fitted.lines) <= BOX["max_lines"]
    assert fitted.height <= 200
    for line in fitted.lines:
        assert line.width <= 601


def test_korean_breaks_at_spaces_not_between_syllables(fonts: FontSet) -> None:
    text = "소셜 네트워크를 위한 빠른 미리보기 카드 소셜 네트워크를 위한 빠른 미리보기 카드"
    fitted = run_fit(fonts, text, width=500, max_lines=6)
    words = set(text.split())
    assert len(fitted.lines) >= 2
    for line in fitted.lines:
        assert all(word in words for word in line.text.split()), line.text


def test_lines_are_balanced(fonts: FontSet) -> None:
    # Greedy filling would leave one ideograph alone on the second line.
    text = "为社交网络快速生成预览卡片，支持所有文字"
    fitted = run_fit(fonts, text, max_size=80)
    assert len(fitted.lines) == 2
    widths = [line.width for line in fitted.lines]
    assert min(widths) > 0.6 * max(widths)


def test_emoji_in_right_to_left_text_run_in_display_order(fonts: FontSet) -> None:
    fitted = run_fit(fonts, "שלום עולם 🚀🇫🇷👨‍👩‍👧", max_size=40)
    line = fitted.lines[0]
    emoji = [run for run in line.runs if run.font == "NotoColorEmoji"]
    assert all(not run.rtl for run in emoji)
    # Right to left: the last emoji written comes first from the left, each cluster whole.
    shown = tuple(c for run in emoji for c in clusters(run.text))
    assert shown == ("👨\u200d👩\u200d👧", "🇫🇷", "🚀")
    assert line.runs[-1].font == "NotoSansHebrew"
    two = run_fit(fonts, "שלום 🚀🎉", max_size=40).lines[0].runs
    assert [r.text for r in two if r.font == "NotoColorEmoji"] == ["🎉🚀"]


@pytest.mark.parametrize(
    "text",
    ["𐫀\U00018d09", "\u2067שלום\u2069 world", "a\u202eb\u202cc", "\U000e0001x", "\u0600\u0601"],
)
def test_odd_code_points_do_not_break_the_bidi_pass(fonts: FontSet, text: str) -> None:
    fitted = run_fit(fonts, text)
    assert len(fitted.lines) == 1


_SIMPLE_ALPHABET = st.sampled_from(
    list("abcXYZ019 .,:;'\"()&éßÆøŁżΩλжЯ#@*_=~<>^`!?-‘’“”–—…\u02c8\u02cc")
    + [chr(c) for c in range(0xC0, 0x250, 7)]
)


@settings(max_examples=1500, deadline=None)
@given(st.text(_SIMPLE_ALPHABET, min_size=1, max_size=60))
def test_fast_breaking_agrees_with_uax14(text: str) -> None:
    from uniseg.linebreak import line_break_units

    from ogshot.text.breaking import _spans

    text = normalise(text) or "a"
    parts = tuple(text)
    _spans.cache_clear()
    fast = [text[i:j] for i, j in _spans(parts, 0)]
    assert fast == [u for u in line_break_units(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Γρήγορες κάρτες για κοινωνικά δίκτυα",  # "κοινωνικά" was cut in the narrow split layout
        "Ţ̬ȩ̂x̧t w̃ith c̆ombining m̄arks",
        "Internationalization considerations",
    ],
)
def test_a_word_is_not_cut_when_a_smaller_size_keeps_it_whole(fonts: FontSet, text: str) -> None:
    fitted = run_fit(fonts, text, width=528, max_size=64, min_size=30, max_lines=5)
    assert not fitted.truncated
    # Every line ends at a word boundary: the words come back whole, none split across lines.
    assert [w for line in fitted.lines for w in line.text.split()] == normalise(text).split()


def test_balancing_never_cuts_a_word(fonts: FontSet) -> None:
    # Balancing narrows the measure; it must not narrow it below the longest word.
    text = "Supercalifragilisticexpialidocious is quite a word"
    fitted = run_fit(fonts, text, width=1040, max_size=80, min_size=40, max_lines=3)
    assert [w for line in fitted.lines for w in line.text.split()] == text.split()


@pytest.mark.parametrize(
    "title",
    [
        "What’s new in v2.0?",
        "Open-source tools we love!",
        "Ship cards — fast, careful, everywhere",
        "How to fix your og:image #42",
        "Don’t ship broken cards…",
        "COVID-19: a year in review",
        "Self-hosted, open-source & free",
    ],
)
def test_everyday_titles_take_the_direct_path_and_agree_with_uax14(title: str) -> None:
    from uniseg.linebreak import line_break_units

    from ogshot.text.breaking import _DECIDED_ELSEWHERE, _simple, _spans

    text = normalise(title)
    assert all(map(_simple, text)) and not _DECIDED_ELSEWHERE.search(text)
    _spans.cache_clear()
    assert [text[i:j] for i, j in _spans(tuple(text), 0)] == list(line_break_units(text))


@pytest.mark.parametrize("text", ["a — — b", "a —  — b", "wait — — what", "ˈstress here", "aˌb c"])
def test_direct_breaking_hands_over_what_it_cannot_decide(text: str) -> None:
    from uniseg.linebreak import line_break_units

    from ogshot.text.breaking import _spans

    _spans.cache_clear()
    assert [text[i:j] for i, j in _spans(tuple(text), 0)] == list(line_break_units(text))


def test_cached_break_units_are_never_changed_by_a_reader(fonts: FontSet) -> None:
    from ogshot.text import Setter
    from ogshot.text.breaking import _CHUNK, _spans

    _spans.cache_clear()
    text = " ".join(f"word{i}" for i in range(60))  # several chunks
    first = list(Setter(fonts, "bold", text).units(10_000))
    second = list(Setter(fonts, "bold", text).units(10_000))  # served from the cache
    assert first == second
    assert "".join(text[i:j] for i, j in first) == text
    assert len(text) > 2 * _CHUNK


_DANGLING = (
    "Typography for everyone — a practical guide to setting every script on the web",
    "Fonts + layout + colour: what a social card needs to look right everywhere",
    "From capture → render → encode: one card in fifty milliseconds on two cores",
    "Долгий путь — от идеи к карточке для социальных сетей и обратно",
    "Ein Leitfaden — wie Karten für soziale Netzwerke gesetzt werden",
)


@pytest.mark.parametrize("text", _DANGLING)
def test_no_line_starts_with_a_dash_plus_or_arrow_in_spaced_scripts(
    fonts: FontSet, text: str
) -> None:
    starts = set()
    for width in range(240, 1100, 24):
        fitted = run_fit(fonts, text, width=width, max_lines=6)
        starts |= {line.text[0] for line in fitted.lines[1:]}
        words = [w for line in fitted.lines for w in line.text.split()]
        assert fitted.truncated or words == text.split()
    assert not starts & set("—+→"), starts


def test_dash_stays_with_the_word_before_but_cjk_keeps_uax14() -> None:
    from ogshot.text.breaking import break_spans

    def units(text: str) -> list[str]:
        parts = clusters(text)
        return ["".join(parts[i:j]) for i, j in break_spans(parts, 0)]

    assert units("everyone — a guide") == ["everyone — ", "a ", "guide"]
    assert units("C + D → E") == ["C + ", "D → ", "E"]
    # Chinese does not space its words: UAX #14 alone decides, a break before the dash stays.
    assert "— " in units("中文 — 日本")


@pytest.mark.parametrize("title", ["Hello world, again and again"])
def test_a_short_title_takes_one_line_when_one_fits_at_a_good_size(
    fonts: FontSet, title: str
) -> None:
    box = dict(width=1040, height=300, max_size=88, min_size=40, max_lines=3, line_height=1.1)
    fitted = fit(title, fonts=fonts, weight="bold", **box)  # type: ignore[arg-type]
    assert len(fitted.lines) == 1
    # It would take two lines at the largest size, and one line costs at most a fifth of it.
    assert 0.8 * 88 <= fitted.size < 88


def test_a_title_that_needs_two_lines_keeps_its_size(fonts: FontSet) -> None:
    # One line would need less than four fifths of the size: two lines at full size it is.
    box = dict(width=1040, height=300, max_size=88, min_size=40, max_lines=3, line_height=1.1)
    fitted = fit("Ship social cards before lunch", fonts=fonts, weight="bold", **box)  # type: ignore[arg-type]
    assert len(fitted.lines) == 2 and fitted.size == 88


def test_a_fitted_text_comes_back_from_memory_and_the_memory_is_bounded() -> None:
    from ogshot.text import fitting

    fonts = FontSet.from_dirs([])
    first = run_fit(fonts, "A site's own tagline")
    assert run_fit(fonts, "A site's own tagline") is first
    assert run_fit(fonts, "A site's own tagline", width=600) is not first
    # What memory answers is what fitting gives in a font set that never saw the text.
    assert first == run_fit(FontSet.from_dirs([]), "A site's own tagline")
    long = "word " * 60
    assert run_fit(fonts, long) is not run_fit(fonts, long)  # too long to keep
    for i in range(fitting._KEPT + 50):
        run_fit(fonts, f"title {i}")
        assert len(fitting._kept[fonts]) <= fitting._KEPT


def test_a_text_fitted_often_stays_kept_however_many_new_titles_come_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ogshot.text import fitting

    monkeypatch.setattr(fitting, "_KEPT", 16)
    fonts = FontSet.from_dirs([])
    label = run_fit(fonts, "example.org")
    first_title = run_fit(fonts, "title 0")
    for i in range(1, 40):  # new titles, with the site's label on every card
        run_fit(fonts, f"title {i}")
        assert run_fit(fonts, "example.org") is label
        assert len(fitting._kept[fonts]) <= 16
    # The titles least recently fitted were let go.
    assert run_fit(fonts, "title 0") is not first_title
