//! The picture marketers look at: customers on the first two principal
//! components, coloured by segment, with the segment names in the legend
//! and each centroid marked with its segment id. PNG or SVG, by the file's
//! extension (plotters).

use std::path::Path;

use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::tagger::Tagger;

/// Most customers drawn (an even stride through the rows); more only blur.
pub const MAX_POINTS: usize = 20_000;

/// Picture size in pixels.
const SIZE: (u32, u32) = (1280, 860);

/// Segment colours (matplotlib's tab10, then tab10 darker).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn colour(segment: usize) -> RGBColor {
    let base = COLOURS[segment % COLOURS.len()];
    if segment < COLOURS.len() {
        base
    } else {
        RGBColor(base.0 / 2, base.1 / 2, base.2 / 2)
    }
}

/// Draws `scores` (rows × components) coloured by `segments` to `path`
/// (`.png` or `.svg`), titled `title`.
pub fn segments(
    path: &Path,
    title: &str,
    tagger: &Tagger,
    scores: ArrayView2<'_, f64>,
    segments: &[u32],
) -> Result<()> {
    let fail = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            draw(&root, title, tagger, scores, segments).map_err(|e| fail(e.to_string()))?;
            root.present().map_err(|e| fail(e.to_string()))
        }
        Some("svg") => {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            draw(&root, title, tagger, scores, segments).map_err(|e| fail(e.to_string()))?;
            root.present().map_err(|e| fail(e.to_string()))
        }
        _ => Err(Error::PlotFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// The first two component scores of the drawn rows (0 for a missing second).
fn points(scores: ArrayView2<'_, f64>, segments: &[u32]) -> Vec<(f64, f64, usize)> {
    let stride = scores.nrows().div_ceil(MAX_POINTS).max(1);
    (0..scores.nrows())
        .step_by(stride)
        .map(|r| {
            let y = if scores.ncols() > 1 {
                scores[[r, 1]]
            } else {
                0.0
            };
            (scores[[r, 0]], y, segments[r] as usize)
        })
        .collect()
}

/// The 0.5th to 99.5th percentile of values, widened a little: the view
/// the bulk of customers fills.
fn range(mut values: Vec<f64>) -> std::ops::Range<f64> {
    values.sort_unstable_by(f64::total_cmp);
    if values.is_empty() {
        return -1.0..1.0;
    }
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.005), at(0.995));
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad)..(hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    tagger: &Tagger,
    scores: ArrayView2<'_, f64>,
    segments: &[u32],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let points = points(scores, segments);
    let xs = range(points.iter().map(|p| p.0).collect());
    let ys = range(points.iter().map(|p| p.1).collect());
    let axis = |c: usize| match tagger.components.get(c) {
        Some(component) => format!(
            "PC{} · {} ({:.0}% of variance)",
            c + 1,
            component.name,
            component.explained_variance_ratio * 100.0
        ),
        None => format!("PC{} (not kept)", c + 1),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(24)
        .x_label_area_size(56)
        .y_label_area_size(64)
        .build_cartesian_2d(xs, ys)?;
    chart
        .configure_mesh()
        .x_desc(axis(0))
        .y_desc(axis(1))
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (s, segment) in tagger.segments.iter().enumerate() {
        let c = colour(s);
        let count = segments.iter().filter(|&&l| l as usize == s).count();
        let share = count as f64 / segments.len().max(1) as f64;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.2 == s)
                    .map(|p| Circle::new((p.0, p.1), 2, c.mix(0.45).filled())),
            )?
            .label(format!(
                "{} · {} ({:.1}%)",
                segment.id,
                segment.name,
                share * 100.0
            ))
            .legend(move |(x, y)| Circle::new((x + 8, y), 6, c.filled()));
    }
    // Centroids, marked with their segment id.
    for (s, segment) in tagger.segments.iter().enumerate() {
        let x = segment.centroid[0];
        let y = segment.centroid.get(1).copied().unwrap_or(0.0);
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 11, colour(s).filled())
                + Circle::new((0, 0), 11, BLACK.stroke_width(2))
                + Text::new(
                    segment.id.to_string(),
                    (-5, -8),
                    ("sans-serif", 16).into_font().color(&WHITE),
                ),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 17))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagger::tests::{FEATURES, population};
    use cdp_core::config::TaggerConfig;

    #[test]
    fn png_and_svg_show_every_segment_by_name() {
        let (x, names, _) = population(600, 9);
        let settings = TaggerConfig {
            features: FEATURES.map(String::from).to_vec(),
            ..TaggerConfig::default()
        };
        let (tagger, _) = Tagger::fit(x.view(), &names, &settings, None).unwrap();
        let tags = tagger.apply(x.view(), &names, 0.2).unwrap();
        let dir = tempfile::tempdir().unwrap();

        let svg = dir.path().join("segments.svg");
        segments(&svg, "test", &tagger, tags.scores.view(), &tags.segments).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for s in &tagger.segments {
            assert!(text.contains(&s.name), "{} missing from the SVG", s.name);
        }
        let axis = tagger.components[0].name.replace('&', "&amp;");
        assert!(text.contains(&axis), "{axis} missing from the SVG");

        let png = dir.path().join("segments.png");
        segments(&png, "test", &tagger, tags.scores.view(), &tags.segments).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());

        let err = segments(
            &dir.path().join("x.jpg"),
            "t",
            &tagger,
            tags.scores.view(),
            &tags.segments,
        )
        .unwrap_err();
        assert!(matches!(err, Error::PlotFormat { .. }), "{err}");
    }
}
