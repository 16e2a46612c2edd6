"""Applications' portal pages: applying (apply.py: the open calls, the applicant's applications, one
application's status), the application form step by step (steps.py, its fields in applications/forms.py),
the review queue (review.py) and the operator console's applications (operator.py). ``router`` holds them
all (mounted by jaif/routes.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from jaif.applications.pages import apply, operator, review, steps

router = APIRouter(include_in_schema=False)
for _module in (apply, steps, review, operator):
    router.include_router(_module.router)
