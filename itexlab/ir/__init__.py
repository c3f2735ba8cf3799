"""The intermediate representations every stage shares: the neutral graph (`graph`) and the plan
(`plan`). Plain data: imports numpy and nothing else of itexlab's."""
