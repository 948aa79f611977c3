"""The static statistics page (components/validation/statistics_page.py) on real TFDV statistics."""

from components.validation import statistics_page


def test_the_static_statistics_page_shows_each_feature_of_each_split():
    import pandas as pd
    import tensorflow_data_validation as tfdv

    statistics = {
        split: tfdv.generate_statistics_from_dataframe(
            pd.DataFrame({"hour": [1, 2, 2, 3, None][:size], "camera_id": ["a", "b", "a", "a", "c"][:size]})
        )
        for split, size in (("train", 5), ("eval", 3))
    }
    page = statistics_page.statistics_html(statistics, [])
    assert "train: 5 examples, eval: 3 examples" in page
    assert page.count("<td>hour</td>") == 2 and page.count("<td>camera_id</td>") == 2
    # train's hour: 4 present, 1 missing (20%), mean 2; its histogram is an inline SVG with one bar per bucket.
    assert "<td>hour</td><td>train</td><td class='number'>4</td><td class='number'><span class='warn'>20.0%" in page
    assert "<td class='number'>2</td>" in page and page.count("<svg") == 2 and "<rect" in page
    assert "<td>a (3), " in page and "<td>a (2), b (1)</td>" in page  # Most frequent first.
    assert "0 anomalies" in page and "<script" not in page
