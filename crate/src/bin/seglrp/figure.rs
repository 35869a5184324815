//! The cohort's figures, in the style of Chlebus et al. 2019: the parallel-coordinates plot of
//! normalised per-channel relevance, and a view of one patient's relevance, a panel per channel. Each is written as
//! SVG and rasterised to PNG by resvg with a bundled font, so a figure looks the same on every
//! machine and needs no system fonts.

use base64::Engine as _;
use resvg::{tiny_skia, usvg};
use seglrp::io::volume::{Volume, PLOT_ORDER, SEQUENCES};

/// The channels' names and the order of the plot's axes (indices into the names): the liver
/// model's as in Chlebus et al. 2019 (plain T1, the contrast phases, T2), any other model's in
/// its own order.
pub fn axes(channels: &[String]) -> Vec<usize> {
    if channels.iter().map(String::as_str).eq(SEQUENCES) {
        PLOT_ORDER.to_vec()
    } else {
        (0..channels.len()).collect()
    }
}

/// matplotlib's "Paired" palette, as in the paper's figure; its pale yellow is darkened to stay
/// visible on white.
const PALETTE: [&str; 12] = [
    "#a6cee3", "#1f78b4", "#b2df8a", "#33a02c", "#fb9a99", "#e31a1c", "#fdbf6f", "#ff7f00", "#cab2d6", "#6a3d9a",
    "#d8c43a", "#b15928",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Tick spacing giving about `target` ticks over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

/// One patient's line: per-channel shares in the model's channel order.
pub struct Line {
    pub name: String,
    pub shares: Vec<f32>,
}

/// The parallel-coordinates plot as SVG, an axis per channel.
pub fn parallel_svg(lines: &[Line], channels: &[String], title: &str) -> String {
    let order = axes(channels);
    let last = order.len().saturating_sub(1).max(1);
    let (w, h) = (1200.0, 700.0);
    let (left, right, top, bottom) = (100.0, 150.0, 60.0, 100.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values = lines.iter().flat_map(|l| l.shares.iter().map(|v| f64::from(*v))).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi.max(lo + 1e-3)) } else { (0.0, 1.0) };
    let pad = 0.05 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |k: usize| left + pw * k as f64 / last as f64;
    let y = |v: f64| top + ph * (hi - v) / (hi - lo);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
            font-family=\"Ubuntu\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"34\" font-size=\"22\" text-anchor=\"middle\" fill=\"#222\">{}</text>\n",
        left + pw / 2.0,
        escape(title)
    );
    let step = tick_step(hi - lo, 7.0);
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        // Enough decimals for the step: 0.05 → 2, 0.025 → 3.
        let mag = step.log10().floor();
        let digits = (-mag).max(0.0) as usize + usize::from((step / 10f64.powf(mag) - 2.5).abs() < 1e-9);
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"20\" text-anchor=\"end\" dominant-baseline=\"middle\" \
                fill=\"#222\">{t:.*}</text>\n",
            left - 10.0,
            y(t),
            digits
        );
        t += step;
    }
    for (k, &c) in order.iter().enumerate() {
        let edge = k == 0 || k == last;
        s += &format!(
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"{2}\" stroke-width=\"{3}\"/>\n\
             <text x=\"{0:.1}\" y=\"{4}\" font-size=\"20\" text-anchor=\"middle\" fill=\"#222\">{5}</text>\n",
            x(k),
            top + ph,
            if edge { "#ccc" } else { "black" },
            if edge { 2 } else { 1 },
            top + ph + 30.0,
            escape(&channels[c])
        );
    }
    s += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#ccc\" \
            stroke-width=\"2\"/>\n\
         <text x=\"{}\" y=\"{}\" font-size=\"22\" text-anchor=\"middle\" fill=\"#222\">input channel</text>\n\
         <text transform=\"translate(28 {}) rotate(-90)\" font-size=\"22\" text-anchor=\"middle\" \
             fill=\"#222\">normalised relevance</text>\n",
        left + pw / 2.0,
        h - 25.0,
        top + ph / 2.0
    );
    let legend_gap = (ph / lines.len().max(1) as f64).min(26.0);
    for (i, line) in lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = order
            .iter()
            .enumerate()
            .map(|(k, &c)| format!("{:.1},{:.1}", x(k), y(f64::from(line.shares[c]))))
            .collect();
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"/>\n",
            points.join(" ")
        );
        let ly = top + 10.0 + legend_gap * i as f64;
        s += &format!(
            "<line x1=\"{0}\" y1=\"{ly:.1}\" x2=\"{1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{2}\" y=\"{ly:.1}\" font-size=\"16\" dominant-baseline=\"middle\" fill=\"#222\">{3}</text>\n",
            w - right + 20.0,
            w - right + 45.0,
            w - right + 52.0,
            escape(&line.name)
        );
    }
    s + "</svg>\n"
}

/// Robust grey window of one channel: 2nd..98th percentile of its non-zero voxels (as the page).
fn grey_window(channel: &[f32]) -> (f32, f32) {
    let mut v: Vec<f32> = channel.iter().copied().filter(|x| *x != 0.0).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let (lo, hi) = (v[v.len() * 2 / 100], v[v.len() * 98 / 100]);
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

/// What the panel figure shows.
pub struct Panels<'a> {
    pub volume: &'a Volume,
    /// The channels' names.
    pub channels: &'a [String],
    /// Relevance, one volume per channel, file order.
    pub relevance: &'a [f32],
    /// The explained region (1 = in), drawn as a contour.
    pub region: &'a [u8],
    /// Axial slice to show.
    pub slice: usize,
    /// None: no positive relevance (the captions say so instead of a percentage).
    pub shares: Option<Vec<f32>>,
    pub title: String,
}

/// One panel as RGBA pixels, `scale` pixels per voxel, anterior up: the sequence in grey,
/// relevance over it (red positive, blue negative, opacity |R| / `rmax`), the region's contour
/// in yellow.
fn panel_pixels(p: &Panels, c: usize, rmax: f32, scale: usize) -> (Vec<u8>, usize, usize) {
    let [nx, ny, _] = p.volume.dims;
    let n = p.volume.voxels();
    let channel = p.volume.channel(c);
    let (lo, hi) = grey_window(channel);
    let base = p.slice * nx * ny;
    let rel = &p.relevance[c * n..(c + 1) * n];
    let in_region = |x: isize, y: isize| {
        x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny && p.region[base + x as usize + nx * y as usize] != 0
    };
    let (w, h) = (nx * scale, ny * scale);
    let mut px = vec![0u8; w * h * 4];
    for y in 0..ny {
        for x in 0..nx {
            let i = base + x + nx * y;
            let g = ((channel[i] - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0;
            let mut rgb = [g, g, g];
            if rmax > 0.0 {
                let a = (rel[i].abs() / rmax).min(1.0);
                let col = if rel[i] > 0.0 { [255.0, 40.0, 0.0] } else { [0.0, 120.0, 255.0] };
                for k in 0..3 {
                    rgb[k] = (1.0 - a) * rgb[k] + a * col[k];
                }
            }
            let (xi, yi) = (x as isize, y as isize);
            let inside = in_region(xi, yi);
            for sy in 0..scale {
                for sx in 0..scale {
                    // The contour runs along the region's outer voxel edges, one output pixel wide.
                    let edge = inside
                        && ((sx == 0 && !in_region(xi - 1, yi))
                            || (sx == scale - 1 && !in_region(xi + 1, yi))
                            || (sy == 0 && !in_region(xi, yi - 1))
                            || (sy == scale - 1 && !in_region(xi, yi + 1)));
                    let row = (ny - 1 - y) * scale + (scale - 1 - sy);
                    let o = 4 * (row * w + x * scale + sx);
                    let c = if edge { [255.0, 230.0, 0.0] } else { rgb };
                    px[o..o + 4].copy_from_slice(&[c[0] as u8, c[1] as u8, c[2] as u8, 255]);
                }
            }
        }
    }
    (px, w, h)
}

fn png_data_url(rgba: Vec<u8>, w: usize, h: usize) -> Result<String, String> {
    let pixmap =
        tiny_skia::Pixmap::from_vec(rgba, tiny_skia::IntSize::from_wh(w as u32, h as u32).ok_or("empty panel")?)
            .ok_or("panel pixels do not match the size")?;
    let png = pixmap.encode_png().map_err(|e| e.to_string())?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}

/// The six-panel figure (2 × 3, file order of the sequences) as SVG with the panels embedded.
pub fn panels_svg(p: &Panels) -> Result<String, String> {
    let [nx, ny, _] = p.volume.dims;
    let n = p.volume.voxels();
    let base = p.slice * nx * ny;
    let channels = p.channels.len();
    // One relevance scale for all panels, so that they can be compared by eye.
    let rmax = (0..channels)
        .flat_map(|c| p.relevance[c * n + base..c * n + base + nx * ny].iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    let scale = (420 / nx.max(ny)).max(2);
    let (pw, ph) = (nx * scale, ny * scale);
    let (gap, head, top) = (12, 34, 50);
    // Three panels a row (the liver model's six: two rows).
    let (cols, rows) = (channels.min(3), channels.div_ceil(3));
    let (w, h) = (cols * pw + (cols + 1) * gap, top + rows * (ph + head + gap) + 30);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"{w}\" \
            height=\"{h}\" font-family=\"Ubuntu\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"black\"/>\n\
         <text x=\"{}\" y=\"32\" font-size=\"22\" text-anchor=\"middle\" fill=\"white\">{}</text>\n",
        w / 2,
        escape(&p.title)
    );
    for c in 0..channels {
        let (col, row) = (c % 3, c / 3);
        let (x, y) = (gap + col * (pw + gap), top + row * (ph + head + gap));
        let (rgba, iw, ih) = panel_pixels(p, c, rmax, scale);
        let share = p
            .shares
            .as_ref()
            .map(|v| format!("{:.1} %", 100.0 * v[c]))
            .unwrap_or_else(|| "no positive relevance".into());
        s += &format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"20\" text-anchor=\"middle\" fill=\"white\">{} — {share}</text>\n\
             <image x=\"{x}\" y=\"{}\" width=\"{iw}\" height=\"{ih}\" xlink:href=\"{}\"/>\n",
            x + pw / 2,
            y + 24,
            escape(&p.channels[c]),
            y + head,
            png_data_url(rgba, iw, ih)?
        );
    }
    s += &format!(
        "<text x=\"{gap}\" y=\"{}\" font-size=\"16\" fill=\"#bbb\">slice z = {} (voxel axes {}: i to the right, j up); \
            relevance red +, blue −, full colour at |R| = {rmax:.3e}; region contour yellow</text>\n",
        h - 10,
        p.slice,
        p.volume.affine.orientation()
    );
    Ok(s + "</svg>\n")
}

/// Rasterises an SVG written by this module to PNG bytes.
pub fn png(svg: &str) -> Result<Vec<u8>, String> {
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
    opt.font_family = "Ubuntu".into();
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("figure: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("figure: empty size")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("figure: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(0.18, 7.0), 0.05);
        assert_eq!(tick_step(1.0, 7.0), 0.2);
        assert_eq!(tick_step(0.05, 7.0), 0.01);
    }
}
