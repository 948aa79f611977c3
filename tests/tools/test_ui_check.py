"""`make ui-check`: how a rendered page is judged."""

from tools import ui_check


def test_a_page_with_an_error_or_without_its_content_fails():
    page = "<html><body><script>var e = 'Something went wrong';</script><h1>xfer-sample</h1><p>pushed</p></body></html>"
    assert ui_check.page_problems(page, ("xfer-sample", "pushed")) == []  # Script text is not what is shown.
    broken = "<div class='error'>Something went <b>wrong</b></div>"
    assert ui_check.page_problems(broken, ("xfer-sample",)) == [
        "shows 'something went wrong'",
        "does not show 'xfer-sample'",
    ]
    assert ui_check.page_problems("<p>Run 1a2b does not exist</p>", ()) == ["shows 'does not exist'"]
