//! The hour and weekday policies see, derived from the request's unix time in UTC.

use docket_policy::{Outcome, hour_and_weekday};

use crate::{compile, model_call};

#[test]
fn known_timestamps() {
    for (time, hour, weekday, what) in [
        (0, 0, 3, "1970-01-01 00:00 UTC, a Thursday"),
        (1_700_000_000, 22, 1, "2023-11-14 22:13:20 UTC, a Tuesday"),
        (1_767_571_200, 0, 0, "2026-01-05 00:00 UTC, a Monday"),
        (1_767_571_199, 23, 6, "2026-01-04 23:59:59 UTC, a Sunday"),
        (951_782_400, 0, 1, "2000-02-29 00:00 UTC, a Tuesday"),
        (-1, 23, 2, "1969-12-31 23:59:59 UTC, a Wednesday"),
    ] {
        assert_eq!(hour_and_weekday(time), (hour, weekday), "{what}");
    }
}

#[test]
fn policies_see_the_derived_hour_and_weekday() {
    let set = compile(
        r#"
        @id("tuesday-22h") permit(principal, action, resource) when { context.hour == 22 && context.weekday == 1 };
        @id("time") forbid(principal, action, resource) when { context.time < 0 };
        "#,
    );
    let mut request = model_call("gpt-4o");
    request.context.time = 1_700_000_000;
    assert_eq!(set.decide(&request).outcome, Outcome::Allow);
    request.context.time += 7_200;
    assert_eq!(set.decide(&request).outcome, Outcome::Deny);
    request.context.time = -1;
    assert_eq!(set.decide(&request).determining, ["time"]);
    request.context.time = i64::MIN;
    assert_eq!(set.decide(&request).determining, ["time"]);
}
