"""The domain: events, identity, person state, rules, triage, routing, cases, reports, simulator.

Plain Python with no broker imports, so a notebook, a back-test or a unit test can call it.
"""
