"""ExecutionResult is plain data with readable representations."""

from faas_sdk import ErrorInfo, ExecutionResult


def make(**overrides):
    fields = dict(success=True, stdout="hello\n", stderr="", value="42", error=None, duration=0.001,
                  sandbox_duration=0.0005, output_truncated=False, outcome="completed", sandbox_id="sbx-1")
    fields.update(overrides)
    return ExecutionResult(**fields)


def test_repr_shows_value_output_and_duration():
    text = repr(make())
    assert "value='42'" in text and "stdout='hello\\n'" in text and "1.000ms" in text


def test_html_escapes_user_output():
    html = make(stdout="<script>", success=False,
                error=ErrorInfo("ValueError", "bad <b>", "Traceback\nValueError: bad <b>"))._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "bad &lt;b&gt;" in html


def test_timed_out_reflects_the_outcome():
    assert make(outcome="timeout", success=False).timed_out
    assert not make().timed_out
