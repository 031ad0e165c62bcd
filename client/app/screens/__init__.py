"""The screens: each a ``name.py`` with its ``name.kv`` beside it, drawing a view model.

A screen only reads its view model and calls its commands; where to go next and what to
do after a local change (count it as pending, wake the sync) is the ``Navigation`` the app
hands it. Nothing here touches the network.
"""
