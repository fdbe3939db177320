"""The market: real Vast.ai offers in, and the playbooks' option table over them (pre-estimation "Required Output").

Public: :func:`records.load_offers` / :func:`records.normalize_offer` (every Vast record shape, units in names),
:func:`live.search_live` (the ``vastai`` SDK, cached), :func:`planning.offers_for` (file, live or bundled snapshot),
:func:`options.plan_options` (hard fit checks first, every rejection with its reason), :func:`render.plan_markdown`
and :func:`render.plan_text`, :func:`capture_time.age_text`. Submodules are imported on use, not here.
"""
