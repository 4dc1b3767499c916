//! HTML rewriting cost per page (`cargo xtask bench`): the gateway's rewriter — banner,
//! the default policy's masking, link rewriting — on the load benchmark's 6 KB page,
//! against lol_html passing the same page through with no handlers (the baseline: the
//! parser's own cost) and a plain copy. A fourth line gives lol_html the gateway's very
//! selectors with handlers that do nothing: the least any rewriter built on lol_html can
//! cost for this policy, so the gap to the gateway's line is what its handlers add.

use actas_core::policy::Policy;
use actas_server::gateway::rewrite::HtmlMasker;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lol_html::{HtmlRewriter, Settings};

#[path = "../examples/support/floor.rs"]
mod floor;

const PAGE: &[u8] = include_bytes!("../examples/gateway_load_page.html");

fn rewrite(c: &mut Criterion) {
    let policy = Policy::starter();
    let masker = HtmlMasker::new(&policy).expect("selectors");
    let banner = "<div id=\"actas-banner\">Sarah Lee acting as Acme Co</div>";
    let mut g = c.benchmark_group("rewrite 6 KB page");
    g.throughput(Throughput::Bytes(PAGE.len() as u64));
    g.bench_function("copy (for scale)", |b| b.iter(|| PAGE.to_vec()));
    g.bench_function("lol_html, no handlers (baseline)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(PAGE.len());
            let mut r = HtmlRewriter::new(Settings::new(), |c: &[u8]| out.extend_from_slice(c));
            r.write(PAGE).expect("write");
            r.end().expect("end");
            out
        })
    });
    g.bench_function(
        "lol_html, the gateway's selectors, empty handlers (floor)",
        |b| b.iter(|| floor::floor_rewrite(&masker, PAGE)),
    );
    g.bench_function("gateway rewriter", |b| {
        b.iter(|| {
            let mut s = masker.stream(banner, Some("http://127.0.0.1:8082"));
            let mut out = s.feed(PAGE).expect("feed").to_vec();
            out.extend_from_slice(&s.finish().expect("finish"));
            out
        })
    });
    g.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
