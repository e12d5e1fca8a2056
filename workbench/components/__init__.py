"""Browser components: JSComponents whose JavaScript and CSS are the files beside them."""
