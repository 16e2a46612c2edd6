"""The portal's pages that belong to no one concept: the front page (a visitor's overview of the models
served, a signed-in user's home) and a project's page. They gather what several concepts hold (access's
projects, allocations, applications, reviews, the inference registry); no concept imports them.
"""
