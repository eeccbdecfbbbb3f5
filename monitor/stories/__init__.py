"""Stories: one event, every outlet, every language.

``features`` reads what an article says about its event (language, a multilingual sentence
vector of its title and lead, the places and names it mentions, its figures and the weekdays it
dates the event by); it runs in the document workers. ``assign`` is the decider: given those
features and the stories active around the article's time, the story it joins, or none (a new
story). The store (``store.stories``) keeps the stories and serialises assignment with the copy
decision, so several instances agree.
"""
